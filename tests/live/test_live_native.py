"""compare_region's page accounting on a space the test controls: unreadable pages, pages the
OS vouches for, the last page past end of file, and nearby changes merged into one finding."""
from __future__ import annotations

import os
import struct
from pathlib import Path

from hpforensics.live.native import MERGE_GAP, compare_region, comparable_length, merge_ranges
from hpforensics.live.space import LiveSpace, Region
from hpforensics.live.procfs import PM_FILE, PM_PRESENT, PM_SWAPPED, classify_pagemap
from hpforensics.space import PAGE_SIZE, BytesAddressSpace, MappedImage

BASE = 0x7000_0000


class FakeSpace(LiveSpace, BytesAddressSpace):
    def __init__(self, data: bytes, absent=(), unchanged=None):
        image = MappedImage(BASE, len(data), "/x.so", "x.so")
        BytesAddressSpace.__init__(self, [(image, data)], source="live:test",
                                   absent_pages=[BASE + p * PAGE_SIZE for p in absent])
        self._unchanged = unchanged

    def regions(self):
        return []

    def image_regions(self, image):
        return []

    def unchanged_pages(self, start, end):
        return self._unchanged


def test_accounting_unreadable_skipped_and_tail(tmp_path: Path):
    size = 5 * PAGE_SIZE + 100  # the file ends 100 bytes into page 5
    file_bytes = bytes((i * 7) & 0xFF for i in range(size))
    memory = bytearray(file_bytes) + bytes(PAGE_SIZE - 100)  # loader zero-fills the tail
    memory[PAGE_SIZE + 10 : PAGE_SIZE + 13] = b"\x90\x90\x90"
    memory[PAGE_SIZE + 13 + MERGE_GAP - 1] ^= 0xFF  # close enough to merge with the first
    memory[4 * PAGE_SIZE + 5] ^= 0xFF  # on a page the OS vouches for: never read
    path = tmp_path / "x.so"
    path.write_bytes(file_bytes)
    region = Region(BASE, BASE + 8 * PAGE_SIZE, "r-xp", 0, "/x.so", "fe:00", 1)
    assert comparable_length(region, size) == 6 * PAGE_SIZE
    unchanged = [False, False, False, False, True, False, False, False]
    space = FakeSpace(bytes(memory), absent=[2], unchanged=unchanged)
    fd = os.open(path, os.O_RDONLY)
    try:
        cmp = compare_region(space, region, fd, size, space.unchanged_pages(0, 0))
    finally:
        os.close(fd)
    counts = (cmp.pages_total, cmp.pages_skipped, cmp.pages_unavailable, cmp.pages_read)
    assert counts == (6, 1, 1, 4)
    assert cmp.unavailable == [(BASE + 2 * PAGE_SIZE, BASE + 3 * PAGE_SIZE)]
    assert cmp.pages_differ == [BASE + PAGE_SIZE]
    (diff,) = cmp.diffs
    assert diff.address == BASE + PAGE_SIZE + 10
    assert len(diff.actual) == 3 + MERGE_GAP
    assert diff.expected == file_bytes[PAGE_SIZE + 10 : PAGE_SIZE + 13 + MERGE_GAP]


def test_merge_ranges_keeps_far_changes_apart():
    assert merge_ranges([(0, 2), (5, 6), (100, 101)], gap=8) == [(0, 6), (100, 101)]


def test_pagemap_flags():
    entries = [PM_PRESENT | PM_FILE | 0x1234, PM_PRESENT | 0x99, 0, PM_SWAPPED | 7,
               PM_PRESENT | PM_FILE | (1 << 56)]
    raw = struct.pack(f"<{len(entries)}Q", *entries)
    # page-cache page: same; private copy: read; never faulted: same; swapped copy: read
    assert classify_pagemap(raw) == [True, False, True, False, True]
