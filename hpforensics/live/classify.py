"""What a changed range of native code does: disassembly, where it branches, and the verdict.

A user-space live patch (libpulp style) maps a patch library into the process and redirects a
function entry into it. So a change whose branch chain ends in a file-backed executable mapping
of a shared object the process mapped is reported as a live patch (verdict hotpatch); anything
else that differs is unexplained, with the branch target and the region it lands in.
"""
from __future__ import annotations

from typing import Sequence

from hpforensics import disasm
from hpforensics.disasm import Branch, Reader
from hpforensics.live.elf import EM_386, EM_AARCH64, EM_X86_64
from hpforensics.live.space import Region

# ELF e_machine -> the PE machine number the disassembler takes
_PE_MACHINE = {EM_X86_64: disasm.AMD64, EM_386: disasm.I386, EM_AARCH64: disasm.ARM64}


def follow_branch(read: Reader, address: int, machine: int, size: int) -> Branch:
    """Where control goes from a changed range of an ELF image (`machine` its e_machine)."""
    return disasm.follow_branch(read, address, _PE_MACHINE.get(machine, 0), size)


def region_of(regions: Sequence[Region], address: int) -> Region | None:
    lo, hi = 0, len(regions)
    while lo < hi:
        mid = (lo + hi) // 2
        if regions[mid].end <= address:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(regions) and regions[lo].start <= address < regions[lo].end:
        return regions[lo]
    return None
