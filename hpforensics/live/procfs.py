"""/proc formats the Linux backend reads: maps lines and pagemap entries, declared once.

Pure functions over text and bytes, so they are tested without a process.
"""
from __future__ import annotations

import logging

from hpforensics.live.space import Region

log = logging.getLogger(__name__)

PROC = "/proc"
# pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst)
PM_PRESENT = 1 << 63
PM_SWAPPED = 1 << 62
PM_FILE = 1 << 61  # file page or shared anonymous page: not a private COW copy
_DELETED = " (deleted)"
USER_LIMIT = 1 << 63  # /proc/PID/mem offsets are signed: nothing user-mode lies above
# Files Wine maps as PE images (Windows executables and libraries)
PE_SUFFIXES = (".dll", ".exe", ".sys", ".drv", ".ocx", ".cpl", ".acm", ".ax", ".efi")


def parse_maps(text: str, named_only: bool = False) -> list[Region]:
    """Regions of a maps text (hot: a host has tens of thousands of lines, so it stays lean).
    `named_only`: only mappings with a name (files, [vdso], [heap]...): what images need."""
    regions: list[Region] = []
    append = regions.append
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6:
            if named_only or len(parts) < 5:
                continue
            path = ""
        else:
            path = parts[5]
        deleted = path.endswith(_DELETED)
        if deleted:
            path = path[: -len(_DELETED)]
        start, _, end = parts[0].partition("-")
        try:
            append(Region(int(start, 16), int(end, 16), parts[1], int(parts[2], 16), path,
                          parts[3], int(parts[4]), deleted))
        except ValueError:
            log.debug("unparsed maps line %r", line)
    return regions


def _top_byte_table() -> bytes:
    """bits 56..63 of an entry -> 1 if the page cannot differ from the file, else 0."""
    out = bytearray(256)
    for top in range(256):
        present, swapped, file_page = top & 0x80, top & 0x40, top & 0x20
        out[top] = 1 if (file_page if present else not swapped) else 0
    return bytes(out)


_UNCHANGED = _top_byte_table()


def classify_pagemap(entries: bytes) -> list[bool]:
    """True for pages that cannot differ from the file: still the page-cache page, or never
    faulted in (a fault would bring the file's page). Swapped pages are private copies.
    Only the flag byte of each entry matters, so it is sliced out and mapped at C speed."""
    flags = entries[7::8].translate(_UNCHANGED)
    if b"\0" not in flags:
        return [True] * len(flags)
    return [b == 1 for b in flags]
