"""ETW trace files (.etl), read by dissect.etl (hpforensics.evtx.etl_reader)."""
from __future__ import annotations

from typing import Iterator

from hpforensics.evtx.formats import LogReader, register
from hpforensics.evtx.records import RawRecord, ReadStats


@register
class EtlReader(LogReader):
    kind = "etl"
    suffixes = (".etl",)

    def read(self, path: str, stats: ReadStats, *, parser: str,
             hash_input: bool) -> Iterator[RawRecord]:
        from hpforensics.evtx.etl_reader import read_etl  # dissect.etl only when a trace is read

        return read_etl(path, stats)
