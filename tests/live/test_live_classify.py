"""Branch following on byte patterns an attacker or a live patcher writes, through a fake
reader: where each leads, and the disassembly reported."""
from __future__ import annotations

import struct

from hpforensics.live.classify import follow_branch, region_of
from hpforensics.live.elf import EM_AARCH64, EM_X86_64
from hpforensics.live.space import Region

F = 0x40_1000  # a function entry


def reader(mem: dict[int, bytes]):
    def read(address: int, size: int) -> bytes | None:
        for base, data in mem.items():
            if base <= address < base + len(data):
                return data[address - base : address - base + size].ljust(size, b"\xcc")
        return None

    return read


def test_jmp_rel32():
    code = b"\xe9" + struct.pack("<i", 0x7000 - 5)
    b = follow_branch(reader({F: code}), F, EM_X86_64, 5)
    assert b.target == F + 0x7000 and b.text.startswith(f"jmp {F + 0x7000:#x}")


def test_jmp_through_rip_relative_pointer():
    slot = F + 6 + 0x100
    mem = {F: b"\xff\x25" + struct.pack("<i", 0x100), slot: struct.pack("<Q", 0x7F00_DEAD_0000)}
    assert follow_branch(reader(mem), F, EM_X86_64, 6).target == 0x7F00_DEAD_0000


def test_push_ret_and_movabs_jmp():
    assert follow_branch(reader({F: b"\x68\x00\x20\x60\x00\xc3"}), F, EM_X86_64, 6).target \
        == 0x602000
    code = b"\x49\xbb" + struct.pack("<Q", 0x7F12_3456_7000) + b"\x41\xff\xe3"
    assert follow_branch(reader({F: code}), F, EM_X86_64, 13).target == 0x7F12_3456_7000


def test_short_jump_back_into_padding_is_followed():
    # hotpatch-style entry: F: jmp short F-5 ; F-5: jmp rel32 far away
    pad = b"\xe9" + struct.pack("<i", 0x10_0000 - 5)
    mem = {F - 5: pad + b"\xeb\xf9"}
    b = follow_branch(reader(mem), F, EM_X86_64, 2)
    assert b.chain == (F, F - 5, F - 5 + 0x10_0000)
    assert b.target == F - 5 + 0x10_0000


def test_not_a_branch_has_no_target():
    b = follow_branch(reader({F: b"\x31\xc0\xc3"}), F, EM_X86_64, 3)
    assert b.target is None and b.text == "xor eax, eax; ret"


def test_aarch64_literal_trampoline():
    # ldr x16, #8 ; br x16 ; .quad target
    code = struct.pack("<II", 0x58000050, 0xD61F0200) + struct.pack("<Q", 0x7F00_1234_5000)
    assert follow_branch(reader({F: code}), F, EM_AARCH64, 16).target == 0x7F00_1234_5000
    assert follow_branch(reader({F: struct.pack("<I", 0x14000010)}), F, EM_AARCH64, 4).target \
        == F + 0x40  # b #+0x40


def test_region_of_finds_the_mapping():
    regions = [Region(0x1000, 0x2000, "r-xp"), Region(0x5000, 0x6000, "rw-p", path="[heap]")]
    assert region_of(regions, 0x5800).path == "[heap]"
    assert region_of(regions, 0x3000) is None and region_of(regions, 0x1000).start == 0x1000
