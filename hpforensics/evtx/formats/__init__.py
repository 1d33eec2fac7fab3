"""The event-log formats, one module each, behind one interface (`LogReader`).

A reader says which file names it claims (by suffix, or by place, as Velociraptor's result sets
and the registry hives are told), what a file of its format starts with (for a file whose name
says nothing), and reads a file into the parser-neutral `RawRecord`s. Discovery
(hpforensics.evtx.ingest) and reading (hpforensics.timeline.reading) ask the registry here; a
new format is one new module in this package, found when the package is first asked.
"""
from __future__ import annotations

import abc
import importlib
import pkgutil
from pathlib import Path, PurePosixPath
from typing import ClassVar, Iterator

from hpforensics.errors import InputError
from hpforensics.evtx.records import RawRecord, ReadStats


class LogReader(abc.ABC):
    kind: ClassVar[str]  # the name inputs carry (InputItem.kind) and reports show
    suffixes: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[int] = 50  # lower is asked first: a claim by place beats one by suffix
    hashes_on_read: ClassVar[bool] = False  # the reader fills stats.sha256 on its own read

    def claims(self, name: PurePosixPath) -> bool:
        return name.suffix.lower() in self.suffixes

    def sniff(self, head: bytes, path: Path) -> bool:
        """Whether a file that starts with `head` (BOM and leading blanks stripped) is this
        format; `path` for readers that also go by the file's place."""
        return False

    @abc.abstractmethod
    def read(self, path: str, stats: ReadStats, *, parser: str,
             hash_input: bool) -> Iterator[RawRecord]:
        """The records of one file; damage goes to stats.warnings, never an exception."""


_READERS: list[LogReader] = []


def register(cls: type[LogReader]) -> type[LogReader]:
    if any(type(r) is cls for r in _READERS):  # a module imported twice (reload)
        return cls
    _READERS.append(cls())
    _READERS.sort(key=lambda r: (r.order, r.kind))
    return cls


_SCANNED = False  # a format module imported directly registers itself before any scan


def readers() -> list[LogReader]:
    global _SCANNED
    if not _SCANNED:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _SCANNED = True
    return _READERS


def reader_for(kind: str, path: str = "") -> LogReader:
    for reader in readers():
        if reader.kind == kind:
            return reader
    raise InputError(path, f"unsupported input kind {kind!r}")


def kind_of(name: str) -> str | None:
    """The format a file or zip member name says it holds, None when the name says nothing."""
    path = PurePosixPath(name.replace("\\", "/"))
    return next((r.kind for r in readers() if r.claims(path)), None)


def sniff(path: Path, raw_head: bytes) -> str | None:
    head = raw_head.lstrip(b"\xef\xbb\xbf \r\n\t")
    return next((r.kind for r in readers() if r.sniff(head, path) or r.sniff(raw_head, path)),
                None)
