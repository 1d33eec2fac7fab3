"""Reference files on disk: a folder tree (a mounted System32 / WinSxS copy, a symbol cache of
binaries) indexed once by file name; a mapped module is matched by name + TimeDateStamp +
SizeOfImage, read from the loader entry or, failing that, from the mapped header itself.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from hpforensics.errors import InputError
from hpforensics.pe.peek import peek
from hpforensics.reference.expected import ExpectedImage, expected_for_template, template_for_file
from hpforensics.space import AddressSpace, MappedImage

log = logging.getLogger(__name__)

PE_SUFFIXES = frozenset({".dll", ".exe", ".sys", ".drv", ".ocx", ".cpl", ".efi", ".scr", ".tsp",
                         ".ax", ".acm"})


@dataclass(frozen=True)
class Identity:
    timestamp: int
    size_of_image: int
    checksum: int


def identity_of(header: bytes) -> Identity | None:
    """TimeDateStamp, SizeOfImage, CheckSum from the first bytes of a PE (file or mapped)."""
    h = peek(header)
    return None if h is None else Identity(h.timestamp, h.size_of_image, h.checksum)


def _same_component(candidate: str, mapped_path: str) -> bool:
    """Whether `candidate` lies in the folder the module was mapped from, by that folder's
    name: in a WinSxS tree the component folder (amd64_microsoft-windows-..._10.0.26100.x_...)
    names the version, so the copy from that component is tried first."""
    folder = mapped_path.replace("\\", "/").rsplit("/", 2)
    return len(folder) >= 2 and bool(folder[-2]) and \
        os.path.basename(os.path.dirname(candidate)).lower() == folder[-2].lower()


class DiskReferences:
    """Finds the on-disk file of a mapped module in `dirs` (searched recursively)."""

    def __init__(self, dirs: Iterable[str | os.PathLike[str]]) -> None:
        self.dirs = [Path(d) for d in dirs]
        for d in self.dirs:
            if not d.is_dir():
                raise InputError(d, "reference folder does not exist")
        self._by_name: dict[str, list[str]] | None = None
        self._ident: dict[str, Identity | None] = {}
        self._lock = threading.Lock()

    def _index(self) -> dict[str, list[str]]:
        with self._lock:
            if self._by_name is None:
                by_name: dict[str, list[str]] = {}
                for d in self.dirs:
                    for root, _, files in os.walk(d):
                        for f in files:
                            if os.path.splitext(f)[1].lower() in PE_SUFFIXES:
                                by_name.setdefault(f.lower(), []).append(os.path.join(root, f))
                self._by_name = by_name
                log.info("indexed %d file names under %s", len(by_name),
                         ", ".join(map(str, self.dirs)))
            return self._by_name

    def _identity(self, path: str) -> Identity | None:
        if path not in self._ident:
            try:
                with open(path, "rb") as fh:
                    self._ident[path] = identity_of(fh.read(4096))
            except OSError:
                self._ident[path] = None
        return self._ident[path]

    def find(self, image: MappedImage, space: AddressSpace | None = None) -> str | None:
        """Path of the file matching `image`, or None."""
        candidates = self._index().get(image.name.lower(), [])
        if not candidates:
            return None
        want_ts, want_size = image.timestamp, image.size
        if want_ts is None and space is not None:
            head = space.read_exact(image.base, 4096)
            ident = identity_of(head) if head else None
            if ident is not None:
                want_ts, want_size = ident.timestamp, ident.size_of_image
        for path in sorted(candidates, key=lambda c: (not _same_component(c, image.path), c)):
            ident = self._identity(path)
            if ident is None:
                continue
            if want_ts is not None and ident.timestamp != want_ts:
                continue
            if (want_size and ident.size_of_image != (want_size + 0xFFF) & ~0xFFF
                    and ident.size_of_image != want_size):
                continue
            if want_ts is None and len(candidates) > 1:
                log.info("%s: no TimeDateStamp known; taking %s by name and size", image.name, path)
            return path
        return None

    def expected_for(self, image: MappedImage, space: AddressSpace) -> ExpectedImage | None:
        path = self.find(image, space)
        if path is None:
            return None
        return expected_for_template(template_for_file(path), image.base)

    def label(self, expected: ExpectedImage) -> str:
        return f"disk:{expected.path}"
