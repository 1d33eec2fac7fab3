"""Malformed and truncated PE files: one InputError naming the file and the offset, never a
crash or a hang, whether through the library or the CLI."""
from __future__ import annotations

import random
import struct
import time

import pytest

from hpforensics.errors import InputError
from hpforensics.reference.expected import build_template

SAMPLE = "vcruntime140.dll"


@pytest.fixture(scope="module")
def good(shared_data):
    return (shared_data / "pe" / SAMPLE).read_bytes()


def _lfanew(data: bytes) -> int:
    return struct.unpack_from("<I", data, 0x3C)[0]


def _expect_error(data: bytes, offset: int | None = None, words: str = ""):
    with pytest.raises(InputError) as err:
        build_template(data, "bad.dll")
    e = err.value
    assert e.path == "bad.dll" and e.offset is not None, e
    if offset is not None:
        assert e.offset == offset, e.one_line()
    assert words in e.message, e.one_line()
    return e


def test_named_defects(good):
    lf = _lfanew(good)
    opt = lf + 24
    _expect_error(b"", 0, "no MZ")
    _expect_error(b"MZ" + bytes(100), 0x0, "no PE signature")  # e_lfanew 0 points at MZ
    _expect_error(good[:0x3C] + b"\xff\xff\xff\x7f" + good[0x40:], 0x3C, "e_lfanew")
    _expect_error(good[:200000 // 4], None, "truncated")
    bad = bytearray(good)
    struct.pack_into("<I", bad, opt + 56, 0xFFFF_FFFF)
    _expect_error(bytes(bad), opt + 56, "SizeOfImage")
    bad = bytearray(good)
    struct.pack_into("<H", bad, opt, 0x999)
    _expect_error(bytes(bad), opt, "magic")
    # the first section's raw data moved past the end of the file
    n_opt = struct.unpack_from("<H", good, lf + 20)[0]
    sec0 = opt + n_opt
    bad = bytearray(good)
    struct.pack_into("<I", bad, sec0 + 20, len(good) + 0x1000)
    _expect_error(bytes(bad), sec0, "past the end")


def test_bad_relocation_block(good):
    from hpforensics.reference.headers import parse_headers

    hdr = parse_headers(good, "x")
    rva, _ = hdr.directory(5)
    off = hdr.rva_to_offset(rva)
    bad = bytearray(good)
    struct.pack_into("<I", bad, off + 4, 3)  # SizeOfBlock smaller than its own header
    e = _expect_error(bytes(bad), off, "SizeOfBlock")
    assert "relocation" in e.message


def test_random_corruption_never_crashes(good):
    rng = random.Random(7)
    deadline = time.monotonic() + 60
    outcomes = {"ok": 0, "error": 0}
    for i in range(300):
        bad = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(0, 0x400) if rng.random() < 0.7 else rng.randrange(len(bad))
            bad[at] = rng.randrange(256)
        if rng.random() < 0.2:
            bad = bad[: rng.randrange(len(bad))]
        try:
            build_template(bytes(bad), "fuzz.dll")
            outcomes["ok"] += 1
        except InputError as e:
            assert e.path == "fuzz.dll"
            outcomes["error"] += 1
        assert time.monotonic() < deadline, "corrupt input took too long"
    assert outcomes["ok"] and outcomes["error"], outcomes
