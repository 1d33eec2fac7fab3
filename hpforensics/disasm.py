"""One disassembler for every source: text of changed code, the instruction that holds a
byte, and where a branch leads (capstone). Machines are PE machine numbers
(IMAGE_FILE_MACHINE_AMD64 0x8664, I386 0x14C, ARM64 0xAA64); the ELF side maps its e_machine
to these once (hpforensics.live.classify).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import capstone

AMD64, I386, ARM64 = 0x8664, 0x14C, 0xAA64
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
POINTER_SIZE = {AMD64: 8, I386: 4, ARM64: 8}
MAX_HOPS = 4  # jmp-to-padding, then through a pointer or an HPAT-like stub, then the target
DECODE_WINDOW = 32  # bytes decoded past the change: enough for mov r64,imm64 ; jmp r64
NEAR = 256  # a hop that stays this close to the change is followed (padding before an entry)

Reader = Callable[[int, int], "bytes | None"]


@lru_cache(maxsize=8)
def _cs(machine: int, detail: bool = False) -> capstone.Cs | None:
    arch = {AMD64: (capstone.CS_ARCH_X86, capstone.CS_MODE_64),
            I386: (capstone.CS_ARCH_X86, capstone.CS_MODE_32),
            ARM64: (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)}.get(machine)
    if arch is None:
        return None
    md = capstone.Cs(*arch)
    md.detail = detail  # operands only where a branch is followed: decoding costs less without
    return md


def disassemble(code: bytes, address: int, machine: int = AMD64, limit: int = 4,
                stop: int | None = None) -> str:
    """Up to `limit` instructions, only those starting before `stop` (at least one)."""
    md = _cs(machine)
    if md is None:
        return ""
    out: list[str] = []
    for insn in md.disasm(code, address):
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
    assert md is not None, machine
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


def branch_target(read: Reader, code: bytes, address: int,
                  machine: int = AMD64) -> int | None:
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
        return pointer(read, slot) if machine == AMD64 else slot
    if len(b) >= 12 and b[0] in (0x48, 0x49) and 0xB8 <= b[1] <= 0xBF:
        tail = b[10:13]
        if (tail[:1] == b"\xff" or tail[:2] == b"\x41\xff" or tail[:1] == b"\x50"
                or tail[:2] == b"\x41\x53"):
            return struct.unpack_from("<Q", b, 2)[0]
    if len(b) >= 6 and b[0] == 0x68 and b[5] == 0xC3:
        return struct.unpack_from("<I", b, 1)[0]
    return None


def pointer(read: Reader, address: int) -> int | None:
    raw = read(address, 8)
    return struct.unpack("<Q", raw)[0] if raw and len(raw) == 8 else None


@dataclass(frozen=True)
class Branch:
    target: int | None
    chain: tuple[int, ...]  # every address the control flow passes through, first = change
    text: str  # disassembly of the changed bytes (and the instruction they end in)


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
    md = _cs(machine, detail=True)
    code = read(address, max(size, 1)) or b""
    text = disassemble(code, address, machine, limit=8)
    if md is None:
        return Branch(None, (address,), text)
    ptr_size = POINTER_SIZE[machine]
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


