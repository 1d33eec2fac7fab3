"""What a changed range of native code does: disassembly, where it branches, and the verdict.

A user-space live patch (libpulp style) maps a patch library into the process and redirects a
function entry into it. So a change whose branch chain ends in a file-backed executable mapping
of a shared object the process mapped is reported as a live patch (verdict hotpatch); anything
else that differs is unexplained, with the branch target and the region it lands in.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import capstone

from hpforensics.live.elf import EM_386, EM_AARCH64, EM_X86_64
from hpforensics.live.space import Region

log = logging.getLogger(__name__)

MAX_HOPS = 4  # jmp-to-padding, then through a pointer or an HPAT-like stub, then the target
DECODE_WINDOW = 32  # bytes decoded past the change: enough for mov r64,imm64 ; jmp r64
NEAR = 256  # a hop that stays this close to the change is followed (padding before an entry)

_ARCH = {
    EM_X86_64: (capstone.CS_ARCH_X86, capstone.CS_MODE_64, 8),
    EM_386: (capstone.CS_ARCH_X86, capstone.CS_MODE_32, 4),
    EM_AARCH64: (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM, 8),
}
_CS: dict[int, capstone.Cs] = {}

Reader = Callable[[int, int], "bytes | None"]


@dataclass(frozen=True)
class Branch:
    target: int | None
    chain: tuple[int, ...]  # every address the control flow passes through, first = change
    text: str  # disassembly of the changed bytes (and the instruction they end in)


def _cs(machine: int) -> capstone.Cs | None:
    if machine not in _ARCH:
        return None
    if machine not in _CS:
        arch, mode, _ = _ARCH[machine]
        md = capstone.Cs(arch, mode)
        md.detail = True
        _CS[machine] = md
    return _CS[machine]


def disassemble(code: bytes, address: int, machine: int = EM_X86_64, limit: int = 8) -> str:
    md = _cs(machine)
    if md is None:
        return ""
    parts = []
    for insn in md.disasm(code, address):
        parts.append(f"{insn.mnemonic} {insn.op_str}".strip())
        if len(parts) >= limit:
            break
    return "; ".join(parts)


def _imm_target(insn: capstone.CsInsn) -> int | None:
    ops = insn.operands
    if len(ops) == 1 and ops[0].type == capstone.CS_OP_IMM:
        return ops[0].imm
    return None


def _step(md: capstone.Cs, read: Reader, address: int, ptr_size: int) -> tuple[int | None, str]:
    """Follow one transfer starting at `address`: (next address, text of what was decoded)."""
    code = read(address, DECODE_WINDOW)
    if not code:
        return None, ""
    insns = list(md.disasm(code, address))
    texts: list[str] = []
    regs: dict[int, int] = {}  # register -> immediate loaded into it
    pushed: int | None = None
    for insn in insns[:6]:
        texts.append(f"{insn.mnemonic} {insn.op_str}".strip())
        mn, ops = insn.mnemonic, insn.operands
        if mn in ("jmp", "call", "b", "bl"):
            if (t := _imm_target(insn)) is not None:
                return t, "; ".join(texts)
            op = ops[0] if ops else None
            if op is not None and op.type == capstone.CS_OP_REG and op.reg in regs:
                return regs[op.reg], "; ".join(texts)
            if op is not None and op.type == capstone.CS_OP_MEM and md.arch == capstone.CS_ARCH_X86:
                mem = op.mem
                if mem.base == capstone.x86.X86_REG_RIP and not mem.index:
                    slot = insn.address + insn.size + mem.disp
                elif not mem.base and not mem.index:
                    slot = mem.disp
                else:
                    return None, "; ".join(texts)
                raw = read(slot, ptr_size)
                return (int.from_bytes(raw, "little") if raw else None), "; ".join(texts)
            return None, "; ".join(texts)
        if mn in ("br", "blr") and ops and ops[0].reg in regs:
            return regs[ops[0].reg], "; ".join(texts)
        if mn == "ldr" and len(ops) == 2 and ops[1].type == capstone.CS_OP_IMM:
            # AArch64 trampoline: ldr x16, <literal> ; br x16 ; .quad target
            raw = read(ops[1].imm, ptr_size)
            if raw:
                regs[ops[0].reg] = int.from_bytes(raw, "little")
            continue
        if mn in ("mov", "movabs", "movz") and len(ops) == 2 and ops[0].type == capstone.CS_OP_REG \
                and ops[1].type == capstone.CS_OP_IMM:
            regs[ops[0].reg] = ops[1].imm & ((1 << (8 * ptr_size)) - 1)
            continue
        if mn == "push" and ops:
            pushed = ops[0].imm if ops[0].type == capstone.CS_OP_IMM else regs.get(ops[0].reg)
            continue
        if mn in ("ret", "retq") and pushed is not None:
            return pushed, "; ".join(texts)
        if mn in ("ret", "retq", "ud2", "int3", "hlt"):
            break
    return None, "; ".join(texts)


def follow_branch(read: Reader, address: int, machine: int, size: int) -> Branch:
    """Where control goes from a changed range: decode at its start, follow up to MAX_HOPS
    transfers while they stay near the change (a jump back into padding before the entry)."""
    md = _cs(machine)
    code = read(address, max(size, 1)) or b""
    text = disassemble(code, address, machine)
    if md is None:
        return Branch(None, (address,), text)
    ptr_size = _ARCH[machine][2]
    chain = [address]
    target: int | None = None
    at = address
    for _ in range(MAX_HOPS):
        nxt, _txt = _step(md, read, at, ptr_size)
        if nxt is None or nxt in chain:
            break
        target = nxt
        chain.append(nxt)
        if abs(nxt - address) > NEAR:
            break  # left the neighbourhood: that is where the redirect leads
        at = nxt
    return Branch(target, tuple(chain), text)


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
