"""Decoding changed code: the hotpatch redirect chain, and where any other branch leads.

A genuine hotpatch redirect of function F (hotpatch-internals.md): `E9 rel32` at F-5 + `EB F9`
at F (or the older `FF 25 disp32` at F-6 + `EB F8`), leading to an HPAT stub
`FF 25 FA 0F 00 00 CC CC` of a patch image mapped in the same space, whose pointer 0x1000
further holds the patch function, which the patch image's table names for F. Every link is
checked byte for byte; the first broken link is the reason a redirect is `unexplained`.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from hpforensics.classify.owners import AddressMap
from hpforensics.reference.patches import PatchImage, patches_for
from hpforensics.pe.structures import (
    HPAT_SLOT_DISTANCE,
    HPAT_STUB_X64,
    REDIRECT_FAR,
    REDIRECT_FORMS,
    REDIRECT_NEAR,
    REDIRECT_WINDOW,
)
from hpforensics.space import AddressSpace

log = logging.getLogger(__name__)

WINDOW_BEFORE, WINDOW_AFTER = -REDIRECT_WINDOW[0], REDIRECT_WINDOW[1]  # [F-6, F+2)
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
ENTRIES = tuple(f.entry for f in REDIRECT_FORMS)


@dataclass
class Redirect:
    function: int  # address of F
    start: int  # window written by the kernel
    end: int
    hotpatch: bool
    reason: str
    target: int | None = None  # the stub (E9 form) or pointer slot (FF 25 form)
    function_target: int | None = None  # where the chain finally leads
    patch: PatchImage | None = None
    sequence: int | None = None
    unavailable: bool = False  # the chain leads into memory the source could not read
    hpat_where: str = ""  # where the HPAT stub lies, as seen


@lru_cache(maxsize=4)
def _cs(machine: int):
    import capstone

    if machine == 0x14C:
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    if machine == 0xAA64:
        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = False
    return md


def disassemble(code: bytes, address: int, machine: int = 0x8664, limit: int = 4,
                stop: int | None = None) -> str:
    """Up to `limit` instructions, only those starting before `stop` (at least one)."""
    out: list[str] = []
    for insn in _cs(machine).disasm(code, address):
        if out and (len(out) >= limit or (stop is not None and insn.address >= stop)):
            break
        out.append(f"{insn.mnemonic} {insn.op_str}".strip())
    return "; ".join(out)


def instruction_start(original: bytes, at: int, machine: int, function: int | None = None,
                      window: int = 48) -> int:
    """Offset of the instruction of `original` (the file's bytes, x86/x64) that holds byte
    `at`: decoded from the function start when it is within 1 KiB, else from each of 16 offsets a
    window back, taking the boundary most decodes agree on (x86 decoding resynchronises
    within a few instructions)."""
    md = _cs(machine)
    if function is not None and 0 <= at - function <= 0x400:
        starts: Sequence[int] = [function]
    else:
        lo = max(at - window, 0)
        starts = range(lo, min(lo + 16, at + 1))
    votes: dict[int, int] = {}
    for first in starts:
        for address, size, _, _ in md.disasm_lite(bytes(original[first : at + 16]), first):
            if address + size > at:
                if address <= at:
                    votes[address] = votes.get(address, 0) + 1
                break
    if not votes and len(starts) == 1:  # data inside the function stopped the decode
        return instruction_start(original, at, machine, None, window)
    return max(votes, key=lambda a: (votes[a], -a)) if votes else at


def _u64(space: AddressSpace, address: int) -> int | None:
    raw = space.read_exact(address, 8)
    return struct.unpack("<Q", raw)[0] if raw else None


def branch_target(space: AddressSpace, code: bytes, address: int,
                  machine: int = 0x8664) -> int | None:
    """Where the instruction(s) at `address` transfer control, for the common hook shapes:
    jmp/call rel8/rel32, jmp/call [rip+disp32], mov rax/r11, imm64 + jmp reg, push imm + ret."""
    if machine == 0xAA64 and len(code) >= 4:
        word = struct.unpack_from("<I", code)[0]
        if word & 0x7C000000 == 0x14000000:  # B / BL imm26
            imm = word & 0x03FFFFFF
            return (address + ((imm - (1 << 26) if imm & (1 << 25) else imm) << 2)) & MASK64
        return None
    if machine not in (0x8664, 0x14C) or not code:
        return None
    b = code
    if b[0] in (0xE9, 0xE8) and len(b) >= 5:
        return (address + 5 + struct.unpack_from("<i", b, 1)[0]) & MASK64
    if b[0] == 0xEB and len(b) >= 2:
        return (address + 2 + struct.unpack_from("<b", b, 1)[0]) & MASK64
    i = 1 if b[0] in (0x48, 0x40) else 0
    if len(b) >= i + 6 and b[i] == 0xFF and b[i + 1] in (0x25, 0x15):
        disp = struct.unpack_from("<i", b, i + 2)[0]
        slot = (address + i + 6 + disp) & MASK64 if machine == 0x8664 else disp & 0xFFFFFFFF
        return _u64(space, slot) if machine == 0x8664 else slot
    if len(b) >= 12 and b[0] in (0x48, 0x49) and 0xB8 <= b[1] <= 0xBF:
        tail = b[10:13]
        if (tail[:1] == b"\xff" or tail[:2] == b"\x41\xff" or tail[:1] == b"\x50"
                or tail[:2] == b"\x41\x53"):
            return struct.unpack_from("<Q", b, 2)[0]
    if len(b) >= 6 and b[0] == 0x68 and b[5] == 0xC3:
        return struct.unpack_from("<I", b, 1)[0]
    return None


def find_redirects(actual: bytes, start: int, end: int, lo: int) -> list[int]:
    """Offsets F (relative to the buffer) with EB F9 / EB F8 whose kernel window touches the
    changed range [start, end) (all offsets relative to `actual`)."""
    out = []
    p = max(start - WINDOW_AFTER + 1, lo)
    stop = min(end + WINDOW_BEFORE, len(actual) - 1)
    while p < stop:
        p = actual.find(b"\xeb", p, stop)
        if p < 0:
            break
        if actual[p : p + 2] in ENTRIES and p - WINDOW_BEFORE < end and p + 2 > start:
            out.append(p)
        p += 1
    return out


def check_redirect(
    space: AddressSpace,
    amap: AddressMap,
    base: int,
    timestamp: int,
    checksum: int,
    actual: bytes,
    expected: bytes,
    f_off: int,
    patches: Sequence[PatchImage],
) -> Redirect:
    """Check the whole chain for the redirect at `base + f_off`; never raises."""
    F = base + f_off
    near = actual[f_off : f_off + 2] == REDIRECT_NEAR.entry
    # The kernel writes [F-6, F+2); in the E9 form F-6 keeps its byte, so the finding starts
    # at the E9.
    form = REDIRECT_NEAR if near else REDIRECT_FAR
    win = Redirect(F, F + form.jump_at, F + WINDOW_AFTER, False, "")
    patch_bases = {p.image.base for p in patches}

    def bad(reason: str) -> Redirect:
        win.reason = reason
        return win

    def unreadable(address: int, what: str) -> Redirect:
        # Paged-out HPAT pages are ordinary in memory images; only when a patch image for this
        # module is mapped can the redirect be the hotpatch engine's, so only then is it left
        # open ("unavailable") rather than unexplained.
        if patches_for(patches, timestamp, checksum):
            win.unavailable = True
            return bad(f"{what} at {address:#x} is not present in the source; a patch image for "
                       "this module is mapped, so the redirect cannot be verified either way")
        return bad(f"{what} at {address:#x} is not readable and no patch image for this module "
                   "is mapped")

    if f_off < WINDOW_BEFORE:
        return bad("short jump at the very start of the image")
    if near:
        if actual[f_off - 5 : f_off - 4] != REDIRECT_NEAR.jump_opcode:
            return bad("EB F9 at the function entry without an E9 jmp at F-5")
        if actual[f_off - 6] != expected[f_off - 6]:
            win.start = F - WINDOW_BEFORE
            return bad("byte before the E9 jmp changed too")
        target = (F + struct.unpack_from("<i", actual, f_off - 4)[0]) & MASK64
        win.target = target
        stub = space.read_exact(target, 8)
        if stub is None:
            return unreadable(target, "E9 target")
        if stub != HPAT_STUB_X64 or target & 7:
            return bad(f"E9 at F-5 lands at {target:#x} ({amap.describe(target)}), which is not an "
                       "HPAT stub")
        holder = amap.owner(target)
        if holder is not None and holder.base not in patch_bases:
            return bad(f"HPAT-like stub at {target:#x} lies inside {holder.name}, not in an HPAT")
        # On 24H2 the HPAT is in the base image's own extension pages; a stub in another
        # image's extension is not this image's HPAT.
        ext = amap.extension_owner(target)
        if ext is not None and ext.base != base:
            return bad(f"HPAT stub at {target:#x} lies in the extension pages of {ext.name}, "
                       "not of this image")
        win.hpat_where = ("the image's extension pages" if ext is not None
                          else "private memory after the image")
        slot = (target + HPAT_SLOT_DISTANCE) & MASK64
    else:
        if actual[f_off - 6 : f_off - 4] != REDIRECT_FAR.jump_opcode:
            return bad("EB F8 at the function entry without an FF 25 jmp at F-6")
        slot = (F + struct.unpack_from("<i", actual, f_off - 4)[0]) & MASK64
        win.target = slot
    fn = _u64(space, slot)
    win.function_target = fn
    if fn is None:
        return unreadable(slot, "HPAT pointer slot")
    patch = next((p for p in patches if p.image.contains(fn)), None)
    if patch is None:
        return bad(f"HPAT pointer at {slot:#x} leads to {amap.describe(fn)}, not into a mapped "
                   "hotpatch image")
    win.patch, win.sequence = patch, patch.sequence
    record = patch.base_for(timestamp, checksum)
    if record is None:
        return bad(f"patch image {patch.image.name} leads the redirect but its "
                   f"IMAGE_HOT_PATCH_BASE does not name this image (TimeDateStamp "
                   f"{timestamp:#x}, CheckSum {checksum:#x})")
    entry = patch.function_entry(record, f_off)
    if entry is None:
        return bad(f"patch table of {patch.image.name} does not name the function at RVA "
                   f"{f_off:#x}")
    if fn - patch.image.base != entry.patch_rva:
        return bad(f"HPAT pointer leads to patch RVA {fn - patch.image.base:#x}, the patch table "
                   f"says {entry.patch_rva:#x}")
    original = entry.expected_first_bytes
    if original is not None and expected[f_off : f_off + 2] != original:
        return bad("patch table's copy of the function's first bytes does not match the file")
    win.hotpatch = True
    win.sequence = record.sequence_number or patch.sequence
    rivals = [p for p, b in patches_for(patches, timestamp, checksum)
              if (b.sequence_number or p.sequence) > win.sequence
              and p.function_entry(b, f_off) is not None]
    win.reason = (f"hotpatch redirect into {patch.image.name} (sequence {win.sequence})"
                  + (f" through an HPAT stub in {win.hpat_where}" if win.hpat_where else "")
                  + (f"; a higher sequence patch {rivals[0].image.name} also names it"
                     if rivals else ""))
    return win
