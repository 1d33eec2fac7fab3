"""Pure-Python reference of `hpforensics.pagehash`, same signatures, used by the tests.

Slow and obvious on purpose: page by page, byte by byte where it matters, with hashlib and the
`xxhash` binding doing the digests.
"""
from __future__ import annotations

import hashlib
import operator
from typing import Any

from hpforensics.pagehash import (
    DEFAULT_PAGE_SIZE,
    DIGEST_SIZES,
    FLAG_MASKED,
    FLAG_ZERO,
    Comparison,
    Mask,
    PageHashes,
    _algo,
    _is_buffer,
    _page_size,
)


def ranges_to_bitmap(ranges: Any, n: int) -> bytes:
    """Bit by bit: the same bitmap and the same errors as the C version."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    bits = bytearray((n + 7) // 8)
    prev = 0
    for item in ranges:
        try:
            start, end = operator.index(item[0]), operator.index(item[1])
        except (TypeError, IndexError, KeyError):
            raise TypeError(f"mask ranges must be (start, end) pairs of ints, got {item!r}") \
                from None
        if not 0 <= start <= end <= n:
            raise ValueError(f"mask range ({start}, {end}) outside 0..{n}")
        if start < prev:
            raise ValueError(f"mask ranges are not sorted: ({start}, {end}) after start {prev}")
        prev = start
        for i in range(start, end):
            bits[i >> 3] |= 1 << (i & 7)
    return bytes(bits)


def _digest(algo: str, data: bytes) -> bytes:
    if algo == "sha256":
        return hashlib.sha256(data).digest()
    # lazy: optional (the [bench] extra); only this reference path uses it
    import xxhash

    return xxhash.xxh3_128_digest(data)


def _mask_bits(mask: Mask, n: int) -> bytes | None:
    if mask is None:
        return None
    if _is_buffer(mask):
        bits = bytes(memoryview(mask).cast("B"))
        if len(bits) != (n + 7) // 8:
            raise ValueError(
                f"mask bitmap must be {(n + 7) // 8} bytes for {n} bytes of data, got {len(bits)}")
        return bits
    return ranges_to_bitmap(mask, n)


def _masked(bits: bytes | None, i: int) -> bool:
    return bits is not None and bool(bits[i >> 3] >> (i & 7) & 1)


def hash_pages(
    buf: Any,
    algo: str = "xxh128",
    page_size: int = DEFAULT_PAGE_SIZE,
    mask: Mask = None,
    threads: int | None = None,
) -> PageHashes:
    _algo(algo)
    _page_size(page_size)
    data = bytes(memoryview(buf).cast("B"))
    bits = _mask_bits(mask, len(data))
    digests, flags = bytearray(), bytearray()
    for start in range(0, len(data), page_size):
        page = bytearray(data[start : start + page_size])
        flag = 0
        for j in range(len(page)):
            if _masked(bits, start + j):
                page[j] = 0
                flag |= FLAG_MASKED
        if not any(page):
            flag |= FLAG_ZERO
        digests += _digest(algo, bytes(page))
        flags.append(flag)
    return PageHashes(algo, page_size, DIGEST_SIZES[algo], bytes(digests), bytes(flags), len(data))


def compare_pages(
    a: Any,
    b: Any,
    page_size: int = DEFAULT_PAGE_SIZE,
    mask: Mask = None,
    threads: int | None = None,
) -> Comparison:
    _page_size(page_size)
    x, y = bytes(memoryview(a).cast("B")), bytes(memoryview(b).cast("B"))
    if len(x) != len(y):
        raise ValueError(f"buffers differ in length: {len(x)} and {len(y)} bytes")
    bits = _mask_bits(mask, len(x))
    ranges: list[tuple[int, int]] = []
    pages: list[int] = []
    for i in range(len(x)):
        if x[i] == y[i] or _masked(bits, i):
            continue
        if ranges and ranges[-1][1] == i:
            ranges[-1] = (ranges[-1][0], i + 1)
        else:
            ranges.append((i, i + 1))
        if not pages or pages[-1] != i // page_size:
            pages.append(i // page_size)
    return Comparison(pages, ranges, page_size, len(x))
