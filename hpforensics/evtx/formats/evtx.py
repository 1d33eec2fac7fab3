"""Windows event log files (.evtx): the Rust-backed `evtx` package by default, python-evtx with
`--parser python-evtx` (both in hpforensics.evtx.readers, behind the chunk integrity scan)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from hpforensics.evtx.formats import LogReader, register
from hpforensics.evtx.readers import read_evtx, read_python_evtx
from hpforensics.evtx.records import RawRecord, ReadStats


@register
class EvtxReader(LogReader):
    kind = "evtx"
    suffixes = (".evtx",)
    hashes_on_read = True  # the integrity scan hashes the file on its one read

    def sniff(self, head: bytes, path: Path) -> bool:
        return head.startswith(b"ElfFile")

    def read(self, path: str, stats: ReadStats, *, parser: str,
             hash_input: bool) -> Iterator[RawRecord]:
        read = read_evtx if parser == "evtx" else read_python_evtx
        return read(path, stats, hash_input=hash_input)
