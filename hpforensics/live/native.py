"""Compare the executable mappings of a native (ELF) image with the file they map.

The kernel maps file bytes at the mapping's offset unchanged, so the expected bytes of an
executable mapping are the file's bytes there (zero past end of file). Pages the OS says are
still the page-cache page, or were never faulted in, cannot differ and are not read. The rest
is read in bounded chunks and compared page-wise by the C core.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Iterator

from hpforensics.pagehash import compare_pages
from hpforensics.live.space import LiveSpace, Region
from hpforensics.space import PAGE_SIZE

log = logging.getLogger(__name__)

CHUNK_PAGES = 256  # 1 MiB per read: bounded memory whatever the mapping size
MERGE_GAP = 8  # equal bytes between two changes shorter than an instruction: one finding


_LOCAL = threading.local()


def _scratch() -> tuple[bytearray, bytearray]:
    if not hasattr(_LOCAL, "bufs"):
        _LOCAL.bufs = (bytearray(CHUNK_PAGES * PAGE_SIZE), bytearray(CHUNK_PAGES * PAGE_SIZE))
    return _LOCAL.bufs


@dataclass
class Diff:
    address: int
    expected: bytes
    actual: bytes


@dataclass
class RegionCompare:
    """Page accounting and differences for one executable mapping."""

    pages_total: int = 0
    pages_read: int = 0
    pages_skipped: int = 0
    pages_unavailable: int = 0
    pages_differ: list[int] = field(default_factory=list)  # page addresses
    diffs: list[Diff] = field(default_factory=list)
    unavailable: list[tuple[int, int]] = field(default_factory=list)  # address ranges


def comparable_length(region: Region, file_size: int) -> int:
    """Bytes of the mapping backed by the file: pages past end of file fault (SIGBUS)."""
    if file_size <= region.offset:
        return 0
    backed = file_size - region.offset
    backed = (backed + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    return min(region.size, backed)


def _runs(flags: list[bool] | None, n: int) -> Iterator[tuple[int, int]]:
    """(first page, page count) of the pages to read, at most CHUNK_PAGES per run."""
    i = 0
    while i < n:
        if flags is not None and flags[i]:
            i += 1
            continue
        j = i
        while j < n and j - i < CHUNK_PAGES and (flags is None or not flags[j]):
            j += 1
        yield i, j - i
        i = j


def merge_ranges(ranges: list[tuple[int, int]], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in ranges:
        if out and lo - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def compare_region(
    space: LiveSpace, region: Region, fd: int, file_size: int, flags: list[bool] | None
) -> RegionCompare:
    """`flags`: per page of the region, True where the OS says it is still the file's page
    (LiveSpace.unchanged_pages), None to read every page."""
    out = RegionCompare()
    length = comparable_length(region, file_size)
    n = length // PAGE_SIZE
    out.pages_total = n
    if not n:
        return out
    if flags is not None:
        flags = flags[:n]
        out.pages_skipped = sum(flags)
    pending: list[tuple[int, int]] = []  # differing ranges, merged across chunk borders
    # Two chunk buffers reused for every region: memory and file bytes are read into them,
    # never copied, and their pages are faulted in once per thread, not once per region.
    mem_buf, file_buf = _scratch()
    for first, count in _runs(flags, n):
        addr = region.start + first * PAGE_SIZE
        size = count * PAGE_SIZE
        actual, expected = memoryview(mem_buf)[:size], memoryview(file_buf)[:size]
        present = space.read_into(addr, actual)
        got = os.preadv(fd, [expected], region.offset + first * PAGE_SIZE)
        if got < size:
            expected[got:] = bytes(size - got)  # tail of the last page: zeros past end of file
        out.pages_read += sum(present)
        for k, ok in enumerate(present):
            if ok:
                continue
            lo = k * PAGE_SIZE
            expected[lo : lo + PAGE_SIZE] = actual[lo : lo + PAGE_SIZE]  # both zero: no diff
            out.pages_unavailable += 1
            a = addr + lo
            if out.unavailable and out.unavailable[-1][1] == a:
                out.unavailable[-1] = (out.unavailable[-1][0], a + PAGE_SIZE)
            else:
                out.unavailable.append((a, a + PAGE_SIZE))
        cmp = compare_pages(actual, expected, page_size=PAGE_SIZE, threads=1)
        out.pages_differ += [addr + p * PAGE_SIZE for p in cmp.pages]
        for lo, hi in cmp.ranges:
            pending.append((addr + lo, addr + hi))
    for lo, hi in merge_ranges(pending):
        # Re-read merged spans from both sides: the equal gap bytes belong in the finding.
        got_bytes = space.read(lo, hi - lo).data
        exp = os.pread(fd, hi - lo, region.offset + lo - region.start)
        exp += bytes(hi - lo - len(exp))
        out.diffs.append(Diff(lo, exp, got_bytes))
    return out


def file_size(fd: int) -> int:
    return os.fstat(fd).st_size
