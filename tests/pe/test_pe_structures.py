"""Every dynamic-relocation kind, v1 and v2, 32/64-bit, and load configs of several sizes,
built from the declarations in structures.py and read back by the parsers."""
from __future__ import annotations

import struct

import pytest

from hpforensics.errors import InputError
from hpforensics.pe.dynreloc import parse_dynamic_relocations
from hpforensics.pe.loadconfig import parse_load_config
from hpforensics.pe.reader import RvaReader
from hpforensics.pe.structures import c_pe

AT = 0x100


def _reader(body: bytes) -> RvaReader:
    data = bytes(AT) + body + bytes(64)
    return RvaReader(data, "synthetic", [], 0, mapped=True, size_of_image=len(data))


def _block(page: int, payload: bytes) -> bytes:
    if len(payload) % 4:
        payload += b"\0\0"
    return c_pe.IMAGE_BASE_RELOCATION(VirtualAddress=page,
                                      SizeOfBlock=8 + len(payload)).dumps() + payload


def _v1(entries: list[tuple[int, bytes]], is64: bool = True) -> bytes:
    st = c_pe.IMAGE_DYNAMIC_RELOCATION64 if is64 else c_pe.IMAGE_DYNAMIC_RELOCATION32
    body = b"".join(st(Symbol=s, BaseRelocSize=len(d)).dumps() + d for s, d in entries)
    return c_pe.IMAGE_DYNAMIC_RELOCATION_TABLE(Version=1, Size=len(body)).dumps() + body


def _v2(entries: list[tuple[int, bytes]], is64: bool = True) -> bytes:
    st = c_pe.IMAGE_DYNAMIC_RELOCATION64_V2 if is64 else c_pe.IMAGE_DYNAMIC_RELOCATION32_V2
    body = b"".join(st(HeaderSize=len(st), FixupInfoSize=len(d), Symbol=s).dumps() + d
                    for s, d in entries)
    return c_pe.IMAGE_DYNAMIC_RELOCATION_TABLE(Version=2, Size=len(body)).dumps() + body


def test_control_transfer_kinds_v1_64():
    ict = _block(0x1000, struct.pack("<II", 0x010 | (1 << 12) | (5 << 13), 0x020))
    ind = _block(0x2000, struct.pack("<HH", 0x030 | (1 << 12) | (1 << 13), 0x040))
    sw = _block(0x3000, struct.pack("<H", 0x050 | (3 << 12)))
    arm = _block(0x4000, struct.pack("<I", 0x3 | (9 << 17)))
    t = parse_dynamic_relocations(_reader(_v1([(3, ict), (4, ind), (5, sw), (8, arm)])), AT, True)
    got = [(d.rva, d.size, d.kind) for d in t.relocations]
    assert got == [(0x1010, 12, "import_control_transfer"), (0x1020, 12, "import_control_transfer"),
                   (0x2030, 6, "indir_control_transfer"), (0x2040, 5, "indir_control_transfer"),
                   (0x3050, 5, "switchtable_branch"),
                   (0x400C, 4, "arm64_kernel_import_call_transfer")]
    assert "iat_index=5 call" in t.relocations[0].detail
    assert t.symbols == [3, 4, 5, 8]


def test_version_2_and_32_bit_headers():
    sw = _block(0x1000, struct.pack("<H", 0x123))
    for is64 in (True, False):
        t = parse_dynamic_relocations(_reader(_v2([(5, sw)], is64)), AT, is64)
        assert t.version == 2
        assert [(d.rva, d.kind) for d in t.relocations] == [(0x1123, "switchtable_branch")]
        t = parse_dynamic_relocations(_reader(_v1([(5, sw)], is64)), AT, is64)
        assert [(d.rva, d.kind) for d in t.relocations] == [(0x1123, "switchtable_branch")]


def test_arm64x_fixups():
    words = [0x010 | (0 << 12) | (3 << 14),            # zero-fill 8 bytes
             0x020 | (1 << 12) | (2 << 14), 0xAAAA, 0xBBBB,  # value, 4 bytes follow
             0x030 | (2 << 12), 0x0004]                  # delta, one scaled word follows
    block = _block(0x5000, struct.pack(f"<{len(words)}H", *words))
    t = parse_dynamic_relocations(_reader(_v1([(6, block)])), AT, True)
    assert [(d.rva, d.size, d.detail) for d in t.relocations] == [
        (0x5010, 8, "zerofill"), (0x5020, 4, "value"), (0x5030, 4, "delta")]


def test_function_override_with_bdd():
    sites = _block(0x6000, struct.pack("<HH", 0x011 | (1 << 12), 0x0))
    rec = c_pe.IMAGE_FUNCTION_OVERRIDE_DYNAMIC_RELOCATION(
        OriginalRva=0x1234, BDDOffset=0, RvaSize=8, BaseRelocSize=len(sites)).dumps()
    fo = rec + struct.pack("<II", 0x2000, 0x3000) + sites
    bdd = (c_pe.IMAGE_BDD_INFO(Version=1, BDDSize=16).dumps()
           + struct.pack("<HHIHHI", 1, 2, 3, 4, 5, 6))
    body = c_pe.IMAGE_FUNCTION_OVERRIDE_HEADER(FuncOverrideSize=len(fo)).dumps() + fo + bdd
    t = parse_dynamic_relocations(_reader(_v1([(7, body)])), AT, True)
    (f,) = t.function_overrides
    assert f.original_rva == 0x1234 and f.override_rvas == [0x2000, 0x3000]
    assert f.bdd_nodes == [(1, 2, 3), (4, 5, 6)] and f.sites == [(0x6011, 1)]
    assert [(d.rva, d.size) for d in t.relocations] == [(0x6011, 4)]


def test_rf_prologue_epilogue_and_unknown_symbols():
    pro = bytes([3]) + b"\x48\x8B\xC4" + _block(0x7000, struct.pack("<H", 0x44))
    t = parse_dynamic_relocations(_reader(_v1([(1, pro), (2, b"\0" * 8), (0x99, b"\0" * 4)])),
                                  AT, True)
    assert [(d.rva, d.size, d.kind) for d in t.relocations] == [(0x7044, 3, "rf_prologue")]
    assert len(t.warnings) == 2


@pytest.mark.parametrize("body", [
    c_pe.IMAGE_DYNAMIC_RELOCATION_TABLE(Version=3, Size=0).dumps(),
    c_pe.IMAGE_DYNAMIC_RELOCATION_TABLE(Version=1, Size=0xFFFFFFF0).dumps(),
    _v1([(5, c_pe.IMAGE_BASE_RELOCATION(VirtualAddress=0, SizeOfBlock=0xFFFF).dumps())]),
    _v1([(5, c_pe.IMAGE_BASE_RELOCATION(VirtualAddress=0x1000, SizeOfBlock=3).dumps())]),
    c_pe.IMAGE_DYNAMIC_RELOCATION_TABLE(Version=1, Size=12).dumps()
    + c_pe.IMAGE_DYNAMIC_RELOCATION64(Symbol=5, BaseRelocSize=0x10000).dumps(),
])
def test_corrupt_tables_raise_input_error_with_offset(body):
    with pytest.raises(InputError) as info:
        parse_dynamic_relocations(_reader(body), AT, True)
    assert info.value.offset is not None and info.value.path == "synthetic"


@pytest.mark.parametrize("is64,size", [(True, 0x70), (True, 0x94), (True, 0xF8), (True, 0x140),
                                       (True, 0x148), (False, 0x48), (False, 0x5C), (False, 0xA4),
                                       (False, 0xC0)])
def test_load_config_of_every_size(is64, size):
    st = c_pe.IMAGE_LOAD_CONFIG_DIRECTORY64 if is64 else c_pe.IMAGE_LOAD_CONFIG_DIRECTORY32
    full = st(Size=size, SecurityCookie=0x1000, GuardFlags=0x500, HotPatchTableOffset=0x4000,
              DynamicValueRelocTableOffset=0x10, GuardMemcpyFunctionPointer=0x77).dumps()
    lc = parse_load_config(_reader(full[:size]), AT, is64)
    assert lc.size == size and lc.get("SecurityCookie") == 0x1000
    hp_end = (0xF4 if is64 else 0x98)
    assert lc.hot_patch_table_offset == (0x4000 if size >= hp_end else 0)
    assert ("GuardMemcpyFunctionPointer" in lc.fields) is (size >= (0x140 if is64 else 0xC0))
    assert lc.field_rva("Size") == AT


def test_load_config_size_past_the_image():
    st = c_pe.IMAGE_LOAD_CONFIG_DIRECTORY64
    with pytest.raises(InputError) as info:
        parse_load_config(_reader(st(Size=0x10000).dumps()), AT, True)
    assert info.value.offset == AT and "past the end" in info.value.message


def test_patch_entry_extents_per_machine():
    from hpforensics.pe.hotpatch import PatchEntry
    from hpforensics.pe.structures import MACHINE_ARM64, MACHINE_I386, ChunkType

    def entry(t, inverse=False):
        return PatchEntry("x", t, inverse, False, base_rva=0x2000, patch_rva=0x3000)

    assert entry(ChunkType.FUNCTION).write_range() == (0x2000 - 6, 8)
    assert entry(ChunkType.FUNCTION).write_range(MACHINE_ARM64) == (0x2000, 8)
    assert entry(ChunkType.ABSOLUTE, True).write_range() == (0x3000, 8)
    assert entry(ChunkType.ABSOLUTE, True).write_range(MACHINE_I386) == (0x3000, 4)
    assert entry(ChunkType.REL32, True).write_range() == (0x3000, 4)
    assert entry(ChunkType.NO_CALL_TARGET).write_range() is None
