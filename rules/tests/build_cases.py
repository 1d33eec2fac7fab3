"""Write the positive test case of every hook-shape rule: a few bytes of code as it would sit
in a changed region, padded the way compiled functions are. Deterministic; committed output.

Run: python rules/tests/build_cases.py  (writes rules/tests/positive/*.bin)
The hotpatch rules' positives are the generated hotpatch samples in samples/pe/.
"""
from __future__ import annotations

import struct
from pathlib import Path

from hpforensics.pe.structures import REDIRECT_FAR, REDIRECT_NEAR  # the one table of forms

HERE = Path(__file__).resolve().parent
PAD = b"\xcc" * 16
USER_TARGET = 0x00007FFB_4321_1000
KERNEL_TARGET = 0xFFFFF805_1234_5000


def cases() -> dict[str, bytes]:
    ret = {
        # mov rax, imm64; jmp rax
        "hook_mov_rax_jmp_rax": b"\x48\xb8" + struct.pack("<Q", USER_TARGET) + b"\xff\xe0",
        # jmp [rip+0]; dq target (user) and a kernel-space variant
        "hook_jmp_rip_absolute": b"\xff\x25\x00\x00\x00\x00" + struct.pack("<Q", USER_TARGET),
        "hook_jmp_rip_absolute_kernel": b"\xff\x25\x00\x00\x00\x00"
        + struct.pack("<Q", KERNEL_TARGET),
        # push low32; mov dword [rsp+4], high32; ret
        "hook_push_ret": b"\x68" + struct.pack("<I", USER_TARGET & 0xFFFFFFFF)
        + b"\xc7\x44\x24\x04" + struct.pack("<I", USER_TARGET >> 32) + b"\xc3",
        # AmsiScanBuffer: mov eax, 0x80070057; ret
        "hook_amsi_scanbuffer_patch": b"\xb8\x57\x00\x07\x80\xc3",
        # EtwEventWrite: xor rax, rax; ret
        "hook_etw_eventwrite_patch": b"\x48\x33\xc0\xc3",
        # older hotpatch redirect: jmp [rip+disp32] in the padding, jmp short -8 at the entry
        "hotpatch_redirect_ff25_ebf8": REDIRECT_FAR.encode(0x2010),
        # current hotpatch redirect: jmp rel32 in the padding, jmp short -7 at the entry
        "hotpatch_redirect_e9_ebf9": REDIRECT_NEAR.encode(0xFF0),
    }
    # every case sits at a function entry after int3 padding and is followed by the rest of a
    # plausible prologue, as in a memory region read with context
    tail = b"\x48\x89\x5c\x24\x08\x57\x48\x83\xec\x20"
    return {name: PAD + code + tail for name, code in ret.items()}


def main() -> None:
    out = HERE / "positive"
    out.mkdir(exist_ok=True)
    for name, data in cases().items():
        (out / f"{name}.bin").write_bytes(data)


if __name__ == "__main__":
    main()
