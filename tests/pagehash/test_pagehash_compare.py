"""compare_pages against byte-by-byte references on random buffers with planted differences."""
from __future__ import annotations

import random

import numpy as np
import pytest
from pagehash_impls import available

from hpforensics import pagehash_ref
from hpforensics.pagehash import compare_pages, ranges_to_bitmap


def planted(rnd: random.Random, n: int, count: int) -> tuple[bytes, bytes]:
    a = bytearray(rnd.randbytes(n))
    b = bytearray(a)
    for _ in range(count):
        if not n:
            break
        at = rnd.randrange(n)
        # runs that cross 64-byte chunks, page boundaries and each other
        for i in range(at, min(n, at + rnd.choice([1, 2, 63, 64, 65, 300, 5000]))):
            b[i] ^= rnd.randrange(1, 256)
    return bytes(a), bytes(b)


def numpy_reference(a: bytes, b: bytes, page_size: int, mask: bytes | None):
    """Independent reference for large buffers: run boundaries from np.diff."""
    x, y = np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)
    d = x != y
    if mask is not None:
        d &= ~np.unpackbits(np.frombuffer(mask, np.uint8), bitorder="little")[: len(a)].astype(bool)
    edges = np.diff(np.concatenate(([0], d.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    pages = np.unique(np.flatnonzero(d) // page_size)
    return [int(p) for p in pages], [(int(s), int(e)) for s, e in zip(starts, ends)]


@pytest.mark.parametrize("impl", available("compare"))
@pytest.mark.parametrize("page_size", [16, 64, 4096])
def test_matches_reference_on_planted_differences(impl, page_size, use_impl):
    use_impl("compare", impl)
    rnd = random.Random(page_size * 31 + len(impl))
    for n in (0, 1, 63, 64, 65, 4096, 4097, 20_000, 70_001):
        a, b = planted(rnd, n, rnd.randrange(0, 12))
        starts = sorted(rnd.randrange(n + 1) for _ in range(10))
        ranges = [(s, min(n, s + rnd.randrange(0, 200))) for s in starts]
        for mask in (None, ranges, ranges_to_bitmap(ranges, n)):
            want = pagehash_ref.compare_pages(a, b, page_size, mask)
            got = compare_pages(a, b, page_size, mask)
            assert (got.pages, got.ranges) == (want.pages, want.ranges), (n, mask is None)


def test_identical_and_fully_different():
    a = bytes(range(256)) * 64
    assert not compare_pages(a, a)
    assert compare_pages(a, a).pages == []
    b = bytes(x ^ 0xFF for x in a)
    c = compare_pages(a, b, 4096)
    assert c.ranges == [(0, len(a))] and c.pages == [0, 1, 2, 3] and c.differing_bytes == len(a)
    # masking everything hides every difference
    assert compare_pages(a, b, mask=[(0, len(a))]).ranges == []


def test_ranges_merge_across_pages_and_masks_split_them():
    a = bytes(3 * 4096)
    b = bytearray(a)
    b[4000:4200] = b"\x01" * 200  # one run over the page 0/1 boundary
    c = compare_pages(a, bytes(b), 4096)
    assert c.ranges == [(4000, 4200)] and c.pages == [0, 1]
    c = compare_pages(a, bytes(b), 4096, mask=[(4090, 4100)])
    assert c.ranges == [(4000, 4090), (4100, 4200)] and c.pages == [0, 1]
    c = compare_pages(a, bytes(b), 4096, mask=[(4000, 4096)])
    assert c.ranges == [(4096, 4200)] and c.pages == [1]


@pytest.fixture(scope="module")
def large_case():
    rnd = random.Random(99)
    n = 32 * 1024 * 1024 + 4097
    a, b = planted(rnd, n, 3000)
    mask = ranges_to_bitmap([(s, s + 4096) for s in range(0, n - 4096, 40_000)], n)
    return a, b, mask, numpy_reference(a, b, 4096, mask)


@pytest.mark.parametrize("impl", available("compare"))
def test_large_buffers_any_thread_count(impl, use_impl, large_case):
    use_impl("compare", impl)
    a, b, mask, (want_pages, want_ranges) = large_case
    assert len(want_ranges) > 1000
    for t in (1, 2, 3, 8):
        c = compare_pages(a, b, 4096, mask, threads=t)
        assert c.pages == want_pages and c.ranges == want_ranges, t


def test_errors():
    with pytest.raises(ValueError, match="differ in length"):
        compare_pages(b"abc", b"abcd")
    with pytest.raises(ValueError, match="power of two"):
        compare_pages(b"abc", b"abc", page_size=100)
    with pytest.raises(ValueError, match="mask bitmap"):
        compare_pages(b"a" * 64, b"b" * 64, mask=b"\x00" * 9)
    with pytest.raises(ValueError, match="not sorted"):
        compare_pages(b"a" * 64, b"b" * 64, mask=[(30, 40), (0, 5)])
    with pytest.raises(TypeError):
        compare_pages(b"a" * 64, 12345)
