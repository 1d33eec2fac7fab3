"""hash_pages / hash_file: masks, flags, thread-count invariance, read-only inputs, errors."""
from __future__ import annotations

import array
import ctypes
import hashlib
import mmap
import random
import sys

import pytest
import xxhash
from pagehash_impls import available

from hpforensics import pagehash, pagehash_ref
from hpforensics.pagehash import FLAG_MASKED, FLAG_ZERO, hash_file, hash_pages, ranges_to_bitmap


def random_ranges(rnd: random.Random, n: int, count: int = 40) -> list[tuple[int, int]]:
    out, pos = [], 0
    for _ in range(count):
        start = pos + rnd.randrange(0, max(1, 2 * n // count))
        end = min(n, start + rnd.randrange(0, 300))
        if start >= n:
            break
        out.append((start, end))
        pos = end
    return out


def image(rnd: random.Random, n: int) -> bytearray:
    buf = bytearray(rnd.randbytes(n))
    buf[4096 : 3 * 4096] = bytes(2 * 4096)  # two zero pages
    return buf


@pytest.mark.parametrize("algo", ["xxh128", "sha256"])
@pytest.mark.parametrize("page_size", [16, 64, 4096, 65536])
def test_matches_reference_with_masks(algo, page_size):
    rnd = random.Random(page_size)
    for n in (0, 1, 15, 16, 17, 5000, 3 * 4096, 50_001):
        buf = bytes(image(rnd, n)) if n >= 3 * 4096 else rnd.randbytes(n)
        ranges = random_ranges(rnd, n)
        want = pagehash_ref.hash_pages(buf, algo, page_size, ranges)
        assert hash_pages(buf, algo, page_size, ranges) == want
        assert hash_pages(buf, algo, page_size, ranges_to_bitmap(ranges, n)) == want
        assert hash_pages(buf, algo, page_size) == pagehash_ref.hash_pages(buf, algo, page_size)


def test_masked_bytes_count_as_zero():
    rnd = random.Random(7)
    buf = bytearray(rnd.randbytes(3 * 4096))
    ranges = [(100, 200), (4096, 8192), (9000, 9001)]
    got = hash_pages(bytes(buf), "sha256", mask=ranges)
    for s, e in ranges:
        buf[s:e] = bytes(e - s)
    plain = hash_pages(bytes(buf), "sha256")
    assert got.digests == plain.digests
    assert got.digest(0) == hashlib.sha256(bytes(buf[:4096])).digest()
    # page 1 is wholly masked: zero and masked; page 2 partly masked; pages 0 and 2 not zero
    assert list(got.flags) == [FLAG_MASKED, FLAG_MASKED | FLAG_ZERO, FLAG_MASKED]
    assert list(plain.flags) == [0, FLAG_ZERO, 0]


def test_ranges_to_bitmap_bits():
    assert ranges_to_bitmap([(0, 1)], 8) == b"\x01"
    assert ranges_to_bitmap([(7, 9)], 16) == b"\x80\x01"
    assert ranges_to_bitmap([(3, 21)], 24) == b"\xf8\xff\x1f"
    assert ranges_to_bitmap([(0, 4), (2, 6), (6, 6)], 10) == b"\x3f\x00"  # overlap and empty merge
    assert ranges_to_bitmap([(0, 10, "reloc")], 10) == b"\xff\x03"  # a third item (kind) is ignored
    assert ranges_to_bitmap([], 0) == b""


@pytest.mark.parametrize("algo", ["xxh128", "sha256"])
def test_thread_count_does_not_change_results(algo):
    rnd = random.Random(3)
    n = 24 * 1024 * 1024 + 777  # enough bytes for every thread to get work
    buf = bytes(rnd.randbytes(1 << 20)) * 24 + rnd.randbytes(777)
    mask = ranges_to_bitmap(random_ranges(rnd, n, 2000), n)
    one = hash_pages(buf, algo, 4096, mask, threads=1)
    for t in (2, 3, 8, 64, 100_000):
        assert hash_pages(buf, algo, 4096, mask, threads=t) == one
    assert hash_pages(buf, algo, 4096, mask) == one  # default: all cores
    # and the answer is right, not merely stable: spot-check pages against the reference
    ref = pagehash_ref.hash_pages(buf[: 64 * 4096], algo, 4096, mask[: 64 * 4096 // 8])
    assert one.digests[: 64 * one.digest_size] == ref.digests
    assert one.flags[:64] == ref.flags


@pytest.mark.parametrize("algo, impl", [(a, i) for a in ("xxh128", "sha256") for i in available(a)])
def test_every_code_path_hashes_pages_alike(algo, impl, use_impl):
    # whole pages (run in pairs by SHA-NI), masked pages (run alone) and a short last page
    rnd = random.Random(11)
    buf = rnd.randbytes(300_001)
    ranges = [(s, s + 8) for s in range(0, 300_001 - 8, 9000)]
    use_impl(algo, impl)
    assert hash_pages(buf, algo, 4096) == pagehash_ref.hash_pages(buf, algo, 4096)
    assert hash_pages(buf, algo, 4096, ranges) == pagehash_ref.hash_pages(buf, algo, 4096, ranges)


def test_read_only_mmap_and_other_buffers(tmp_path):
    rnd = random.Random(5)
    data = rnd.randbytes(10 * 4096 + 99)
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    want = hash_pages(data, "sha256")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert hash_pages(mm, "sha256") == want
        assert pagehash.compare_pages(mm, data).ranges == []
    assert hash_file(path, "sha256") == want
    assert hash_pages(memoryview(data), "sha256") == want
    assert hash_pages(bytearray(data), "sha256") == want
    words = array.array("I", data[: 4 * (len(data) // 4)])
    assert hash_pages(words, "sha256") == hash_pages(data[: 4 * (len(data) // 4)], "sha256")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert len(hash_file(empty)) == 0 and hash_file(empty).digests == b""


PROT_NONE = 0  # mprotect(2); the mmap module names only READ, WRITE and EXEC


@pytest.mark.skipif(sys.platform != "linux", reason="mprotect through ctypes: Linux")
@pytest.mark.parametrize("impl", available("xxh128"))
def test_pages_before_an_inaccessible_page_hash_without_a_fault(impl, use_impl):
    """The XXH3 loops prefetch one page ahead (pagehash.h): at the end of a mapping that page
    may be unmapped or PROT_NONE, as in a live process's guard pages. A prefetch must never
    fault, and the digests are those of the bytes alone."""
    use_impl("xxh128", impl)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    page = mmap.PAGESIZE
    mm = mmap.mmap(-1, 4 * page)
    try:
        mm[: 3 * page] = random.Random(9).randbytes(3 * page)
        cell = ctypes.c_char.from_buffer(mm)
        base = ctypes.addressof(cell)
        del cell  # the export would keep the map from closing
        assert libc.mprotect(base + 3 * page, page, PROT_NONE) == 0, ctypes.get_errno()
        view = memoryview(mm)[: 3 * page]
        want = [xxhash.xxh3_128_digest(bytes(view[o : o + 4096]))
                for o in range(0, 3 * page, 4096)]
        for threads in (1, 2):
            got = hash_pages(view, "xxh128", 4096, threads=threads)
            assert [got.digest(i) for i in range(len(got))] == want
        # one short 16 KiB "page" of 12 KiB: the loop for other lengths, up to the guard
        assert hash_pages(view, "xxh128", 16384).digest(0) == xxhash.xxh3_128_digest(bytes(view))
        del view
        libc.mprotect(base + 3 * page, page, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        mm.close()


def test_hash_file_does_not_modify_or_need_write_access(tmp_path):
    path = tmp_path / "ro.bin"
    path.write_bytes(b"\x01" * 5000)
    path.chmod(0o444)
    before = path.stat()
    ph = hash_file(path, "xxh128", page_size=1024)
    assert len(ph) == 5 and ph.page_length(4) == 5000 - 4096
    after = path.stat()
    assert (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)


@pytest.mark.parametrize(
    "kwargs, exc, text",
    [
        ({"page_size": 0}, ValueError, "power of two"),
        ({"page_size": 8}, ValueError, "power of two"),
        ({"page_size": 4097}, ValueError, "power of two"),
        ({"page_size": "4096"}, TypeError, "page_size"),
        ({"algo": "md5"}, ValueError, "unknown algorithm"),
        ({"threads": 0}, ValueError, "threads"),
        ({"threads": 1.5}, TypeError, "threads"),
        ({"mask": b"\x00"}, ValueError, "mask bitmap must be"),
        ({"mask": [(10, 5)]}, ValueError, "outside"),
        ({"mask": [(0, 10_000)]}, ValueError, "outside"),
        ({"mask": [(-1, 5)]}, ValueError, "outside"),
        ({"mask": [(50, 60), (10, 20)]}, ValueError, "not sorted"),
        ({"mask": [(1,)]}, TypeError, "pairs"),
        ({"mask": [None]}, TypeError, "pairs"),
        ({"mask": [(1.5, 4)]}, TypeError, "pairs"),
        ({"mask": "abc"}, TypeError, "mask"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        hash_pages(b"\x00" * 5000, **kwargs)


def test_bad_buffers_and_files(tmp_path):
    with pytest.raises(TypeError, match="bytes-like"):
        hash_pages("not bytes")
    with pytest.raises(TypeError, match="contiguous"):
        pagehash._pagehash.hash_pages(memoryview(b"abcdef")[::2], 0, 4096, None, 1)
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="page_size"):
        hash_file(tmp_path / "missing.bin", page_size=3)  # arguments are checked first


def test_hash_file_progress_chunks_give_the_same_digests(tmp_path, monkeypatch):
    rnd = random.Random(8)
    data = rnd.randbytes(37 * 4096 + 5)
    path = tmp_path / "p.bin"
    path.write_bytes(data)
    ranges = random_ranges(rnd, len(data), 30)
    monkeypatch.setattr(pagehash, "PROGRESS_CHUNK", 8 * 4096)
    seen: list[tuple[int, int]] = []
    got = hash_file(path, "sha256", 4096, ranges, progress=lambda d, t: seen.append((d, t)))
    assert got == hash_pages(data, "sha256", 4096, ranges)
    assert [d for d, _ in seen] == [8 * 4096 * k for k in range(1, 5)] + [len(data)]
    assert {t for _, t in seen} == {len(data)}


def test_bitmap_bits_past_the_end_are_ignored():
    data = b"\x01\x02\x03\x04\x05"
    assert hash_pages(data, "sha256", mask=b"\xe0").flags == b"\x00"  # bits 5..7: no bytes
    assert hash_pages(data, "sha256", mask=b"\xe0") == hash_pages(data, "sha256")
    assert hash_pages(data, "sha256", mask=b"\xff").flags == bytes([FLAG_MASKED | FLAG_ZERO])
    other = b"\x09\x02\x03\x04\x05"
    assert pagehash.compare_pages(data, other, mask=b"\xe0").ranges == [(0, 1)]
    assert pagehash.compare_pages(data, other, mask=b"\x01").ranges == []


def test_ranges_to_bitmap_matches_reference_and_errors_alike():
    rnd = random.Random(12)
    for _ in range(300):
        n = rnd.randrange(0, 3000)
        starts = sorted(rnd.randrange(n + 1) for _ in range(rnd.randrange(0, 30)))
        ranges = [(s, min(n, s + rnd.randrange(0, 70)), "kind") for s in starts]
        assert ranges_to_bitmap(ranges, n) == pagehash_ref.ranges_to_bitmap(ranges, n)
    cases = [([(5, 3)], ValueError), ([(0, 101)], ValueError), ([(9, 10), (8, 9)], ValueError),
             ([(2**70, 2**71)], ValueError), ([("a", 3)], TypeError), ([(1,)], TypeError),
             (7, TypeError)]
    for bad, exc in cases:
        with pytest.raises(exc):
            ranges_to_bitmap(bad, 100)
        with pytest.raises(exc):
            pagehash_ref.ranges_to_bitmap(bad, 100)
    assert ranges_to_bitmap(iter([(0, 3)]), 8) == b"\x07"  # any iterable of pairs
