"""Bounded, layout-aware reads by RVA: the one place where an RVA becomes bytes.

A file layout maps an RVA through the section table; a mapped (memory) layout has file offset
== RVA. Every out-of-bounds read raises InputError naming the offset, so no parser in this
package ever indexes raw bytes itself.
"""
from __future__ import annotations

import logging
import mmap
import struct
from dataclasses import dataclass

from hpforensics.errors import InputError

log = logging.getLogger(__name__)

# Upper bound on any single structure read (tables are walked entry by entry): 64 MiB.
MAX_READ = 64 << 20


@dataclass(frozen=True)
class Section:
    name: str
    rva: int
    virtual_size: int
    raw_offset: int
    raw_size: int
    characteristics: int

    @property
    def executable(self) -> bool:
        return bool(self.characteristics & 0x20000000) or bool(self.characteristics & 0x20)

    @property
    def writable(self) -> bool:
        return bool(self.characteristics & 0x80000000)

    @property
    def span(self) -> int:
        """Bytes this section occupies in memory (at least its raw data)."""
        return max(self.virtual_size, self.raw_size)

    def contains_rva(self, rva: int) -> bool:
        return self.rva <= rva < self.rva + self.span


class RvaReader:
    """Reads bytes at RVAs of one image held in `data`."""

    def __init__(
        self,
        data: bytes | bytearray | memoryview | mmap.mmap,
        path: str,
        sections: list[Section],
        size_of_headers: int,
        mapped: bool,
        size_of_image: int = 0,
    ) -> None:
        self.data = memoryview(data)
        self.size_of_image = size_of_image
        self.path = path
        self.sections = sections
        self.size_of_headers = size_of_headers
        self.mapped = mapped

    def error(self, message: str, offset: int | None) -> InputError:
        return InputError(self.path, message, offset)

    def offset_of(self, rva: int) -> int | None:
        """File offset of `rva`, or None when the RVA has no bytes in the file (bss, gaps)."""
        if self.mapped:
            return rva
        if rva < self.size_of_headers:
            return rva
        for s in self.sections:
            if s.contains_rva(rva):
                delta = rva - s.rva
                return s.raw_offset + delta if delta < s.raw_size else None
        return None

    def section_of(self, rva: int) -> Section | None:
        for s in self.sections:
            if s.contains_rva(rva):
                return s
        return None

    def read(self, rva: int, size: int, what: str, source: int | None = None) -> bytes:
        """`size` bytes at `rva`; uninitialised section tails read as zeros (as the loader maps).

        `source`: RVA of the field that pointed here; an error names its offset when the target
        itself has no place in the file.
        """
        try:
            return self._read(rva, size, what)
        except InputError as exc:
            if exc.offset is None and source is not None:
                raise self.error(exc.message + f" (pointer at RVA {source:#x})",
                                 self.where(source)) from None
            raise

    def _read(self, rva: int, size: int, what: str) -> bytes:
        if size < 0 or size > MAX_READ:
            raise self.error(f"{what}: implausible size {size:#x}", self.offset_of(rva) or rva)
        if rva < 0:
            raise self.error(f"{what}: negative RVA", None)
        if self.mapped:
            end = rva + size
            if end > len(self.data):
                raise self.error(f"{what} at RVA {rva:#x} (+{size:#x}) is beyond the image", rva)
            return bytes(self.data[rva:end])
        out = bytearray()
        cur, left = rva, size
        while left:
            off = self.offset_of(cur)
            sec = self.section_of(cur)
            if off is None and sec is None:
                # Slack between sections (or after the last) inside SizeOfImage maps as zeros.
                nxt = min((s.rva for s in self.sections if s.rva > cur), default=self.size_of_image)
                if cur >= self.size_of_image or nxt <= cur:
                    raise self.error(f"{what} at RVA {cur:#x} is outside every section", None)
                n = min(left, nxt - cur)
                out += bytes(n)
            elif off is None:  # inside a section, past its raw data: zero-filled in memory
                assert sec is not None
                n = min(left, sec.rva + sec.span - cur)
                out += bytes(n)
            else:
                limit = (sec.rva + min(sec.raw_size, sec.span)) if sec else self.size_of_headers
                n = min(left, limit - cur) if limit > cur else left
                if off + n > len(self.data):
                    raise self.error(f"{what} at RVA {cur:#x} runs past the end of the file", off)
                out += self.data[off : off + n]
            cur += n
            left -= n
        return bytes(out)

    def u16(self, rva: int, what: str, source: int | None = None) -> int:
        return struct.unpack("<H", self.read(rva, 2, what, source))[0]

    def u32(self, rva: int, what: str, source: int | None = None) -> int:
        return struct.unpack("<I", self.read(rva, 4, what, source))[0]

    def u64(self, rva: int, what: str, source: int | None = None) -> int:
        return struct.unpack("<Q", self.read(rva, 8, what, source))[0]

    def where(self, rva: int) -> int:
        """The offset to name in an error about `rva` (file offset, or the RVA when unmapped)."""
        off = self.offset_of(rva)
        return rva if off is None else off
