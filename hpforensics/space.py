"""The contract every memory source implements, and the verification engine consumes.

A source is one address space (a process, the kernel, a carved module): it lists the images
mapped in it and reads bytes, saying which pages it could not read. The engine never asks how
the bytes were obtained, so a Volatility layer, /proc/PID/mem, ReadProcessMemory and a flat
file are interchangeable.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Iterator, Sequence

PAGE_SIZE = 0x1000


@dataclass(frozen=True)
class MappedImage:
    """An image-backed mapping as the source sees it."""

    base: int
    size: int
    path: str  # as the source names it (loader full name, VAD file name, /proc maps path)
    name: str  # file name only, lower-case comparison is the caller's business
    in_loader_list: bool = True  # False: found in VADs / maps but not in the loader lists
    # What the OS's own records say (Windows loader entry); None where the source cannot tell.
    hotpatch_state: int | None = None
    active_patch_base: int | None = None
    is_patch_image: bool = False  # loaded with LoadReasonPatchImage, where known
    timestamp: int | None = None  # TimeDateStamp from the loader entry or mapped header
    checksum: int | None = None
    # The whole image mapping as the source sees it (VAD, /proc maps run, VirtualQuery
    # allocation); on 24H2 a hotpatchable image's mapping runs past SizeOfImage. None: unknown.
    mapped_size: int | None = None

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def extension(self) -> tuple[int, int] | None:
        """[start, end) of the mapping past SizeOfImage (hotpatch extension pages), if any."""
        if self.mapped_size is None:
            return None
        start = self.base + ((self.size + 0xFFF) & ~0xFFF)
        end = self.base + self.mapped_size
        return (start, end) if end > start else None

    def contains(self, address: int) -> bool:
        return self.base <= address < self.end


@dataclass(frozen=True)
class ReadResult:
    """Bytes of [address, address+len(data)); unreadable pages are zero-filled.

    `present[i]` is False when page i (counted from the page holding `address`) could not be
    read: paged out, smeared, not resident, or denied.
    """

    address: int
    data: bytes
    present: tuple[bool, ...]

    @property
    def complete(self) -> bool:
        return all(self.present)


class AddressSpace(abc.ABC):
    """One address space: a process, kernel space, or a single carved module."""

    #: "dump:<file>", "live:<host>", "file:<path>" — copied into every Finding.source
    source: str = ""
    pid: int | None = None
    process: str = ""

    @abc.abstractmethod
    def images(self) -> Sequence[MappedImage]:
        """Every image mapped in this space, loader-listed or not, sorted by base."""

    @abc.abstractmethod
    def read(self, address: int, size: int) -> ReadResult:
        """Read `size` bytes; never raises for unreadable pages, marks them absent instead."""

    def read_exact(self, address: int, size: int) -> bytes | None:
        """The bytes, or None if any page of the range is unreadable."""
        result = self.read(address, size)
        return result.data if result.complete else None

    def image_at(self, address: int) -> MappedImage | None:
        for image in self.images():
            if image.contains(address):
                return image
        return None

    def iter_images(self) -> Iterator[MappedImage]:
        yield from self.images()


class BytesAddressSpace(AddressSpace):
    """A space built from byte strings at fixed addresses: carved modules, tests, `pe diff`."""

    def __init__(
        self,
        regions: Sequence[tuple[MappedImage, bytes]],
        source: str = "file",
        absent_pages: Sequence[int] = (),
        pid: int | None = None,
        process: str = "",
    ) -> None:
        self._regions = sorted(regions, key=lambda r: r[0].base)
        self._absent = frozenset(p & ~(PAGE_SIZE - 1) for p in absent_pages)
        self.source = source
        self.pid = pid
        self.process = process

    def images(self) -> Sequence[MappedImage]:
        return [image for image, _ in self._regions]

    def read(self, address: int, size: int) -> ReadResult:
        out = bytearray(size)
        first_page = address & ~(PAGE_SIZE - 1)
        n_pages = (address + size - first_page + PAGE_SIZE - 1) // PAGE_SIZE if size else 0
        present = [False] * n_pages
        for image, data in self._regions:
            lo = max(address, image.base)
            hi = min(address + size, image.base + len(data))
            if lo >= hi:
                continue
            out[lo - address : hi - address] = data[lo - image.base : hi - image.base]
            for page in range(lo & ~(PAGE_SIZE - 1), hi, PAGE_SIZE):
                if page not in self._absent:
                    present[(page - first_page) // PAGE_SIZE] = True
        for i, ok in enumerate(present):
            if not ok:
                lo = max(address, first_page + i * PAGE_SIZE)
                hi = min(address + size, first_page + (i + 1) * PAGE_SIZE)
                out[lo - address : hi - address] = bytes(hi - lo)
        return ReadResult(address, bytes(out), tuple(present))
