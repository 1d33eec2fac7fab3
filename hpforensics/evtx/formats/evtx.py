"""Windows event log files (.evtx), all behind the chunk integrity scan (hpforensics.evtx.readers):
by default the C decoder for the kept records of the common shape and the Rust-backed `evtx`
package for the rest; `--parser evtx-json` the Rust parser for every record (the reference the
decoder is tested against, for checking it on one's own evidence); `--parser python-evtx`."""
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
        if parser == "python-evtx":
            return read_python_evtx(path, stats, hash_input=hash_input)
        return read_evtx(path, stats, hash_input=hash_input, native=parser == "evtx")
