"""Malformed images: one InputError naming the offset, bounded work, never another exception."""
from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest

from hpforensics.errors import InputError
from hpforensics.pe import PEImage

PE_DIR = Path(__file__).resolve().parents[2] / "samples" / "pe"


@pytest.fixture(scope="module")
def vcr(shared_data) -> bytes:
    return (shared_data / "pe" / "vcruntime140.dll").read_bytes()


def _error(data: bytes, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        PEImage.from_bytes(data, "bad.dll", **kw)
    return info.value


def test_truncated_file_names_the_section_header(vcr):
    err = _error(vcr[:50000])
    assert "truncated" in err.message and err.path == "bad.dll"
    lfanew = struct.unpack_from("<I", vcr, 0x3C)[0]
    table = lfanew + 24 + struct.unpack_from("<H", vcr, lfanew + 20)[0]
    assert table <= err.offset < table + 40 * 8 and (err.offset - table) % 40 == 0


def test_corrupt_e_lfanew_and_magic(vcr):
    bad = bytearray(vcr)
    struct.pack_into("<I", bad, 0x3C, 0x7FFFFF00)
    assert _error(bytes(bad)).offset == 0x3C
    assert _error(b"XX" + vcr[2:]).offset == 0
    assert _error(b"").offset == 0


def test_load_config_size_outside_the_image(vcr):
    image = PEImage.from_bytes(vcr, "ok.dll")
    at = image.reader.offset_of(image.load_config.rva)
    bad = bytearray(vcr)
    struct.pack_into("<I", bad, at, 0x7FFF0000)
    err = _error(bytes(bad))
    assert err.offset == at and "load configuration" in err.message


def _hp_offsets(data: bytes):
    img = PEImage.from_bytes(data, "hp.dll")
    hp = img.hotpatch
    return (img, img.reader.offset_of(hp.rva),
            img.reader.offset_of(hp.rva + hp.bases[0].patch_table_offset))


@pytest.mark.parametrize("field,value", [(16, 0xFFFFFFFF), (12, 0x7FFFFFF0), (24, 0xFFFF)])
def test_huge_hot_patch_counts_fail_fast(field, value):
    data = bytearray((PE_DIR / "hpbase_hp1.dll").read_bytes())
    _, info_at, _ = _hp_offsets(bytes(data))
    struct.pack_into("<I", data, info_at + field, value)
    t = time.monotonic()
    err = _error(bytes(data))
    assert time.monotonic() - t < 1.0 and err.offset is not None


def test_patch_table_without_terminator_is_bounded():
    data = bytearray((PE_DIR / "hpbase_hp1.dll").read_bytes())
    _, _, table_at = _hp_offsets(bytes(data))
    # every following DWORD becomes a chunk header claiming 4095 FUNCTION entries
    for i in range(table_at, min(len(data), table_at + 0x100), 4):
        struct.pack_into("<I", data, i, 0x1CFFF)
    t = time.monotonic()
    _error(bytes(data))
    assert time.monotonic() - t < 1.0


def test_non_strict_keeps_what_it_can(vcr):
    image = PEImage.from_bytes(vcr, "ok.dll")
    at = image.reader.offset_of(image.load_config.rva)
    bad = bytearray(vcr)
    struct.pack_into("<I", bad, at, 0x7FFF0000)
    partial = PEImage.from_bytes(bytes(bad), "bad.dll", strict=False)
    assert partial.load_config is None and len(partial.problems) == 1
    assert partial.exports == image.exports and partial.imports == image.imports


def test_random_corruption_never_escapes_as_another_exception(vcr):
    rng = random.Random(1234)
    seeds = [(PE_DIR / "hpbase_hp2.dll").read_bytes(), (PE_DIR / "hpbase.dll").read_bytes(),
             vcr[:0x1000]]
    start = time.monotonic()
    for n in range(400):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        try:
            img = PEImage.from_bytes(bytes(data), f"fuzz{n}", mapped=rng.random() < 0.3)
            img.loader_ranges()
        except InputError as exc:
            assert exc.path == f"fuzz{n}" and exc.offset is not None, exc
    assert time.monotonic() - start < 60
