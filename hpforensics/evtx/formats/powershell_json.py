"""Event exports as JSON: `Get-WinEvent | ConvertTo-Json` (an array) or JSON Lines."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from hpforensics.evtx.formats import LogReader, register
from hpforensics.evtx.records import RawRecord, ReadStats
from hpforensics.evtx.exports import read_json


@register
class JsonExportReader(LogReader):
    kind = "json"
    suffixes = (".json", ".jsonl")

    def sniff(self, head: bytes, path: Path) -> bool:
        return head[:1] in (b"[", b"{")

    def read(self, path: str, stats: ReadStats, *, parser: str,
             hash_input: bool) -> Iterator[RawRecord]:

        return read_json(path, stats)
