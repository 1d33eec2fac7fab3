"""Event exports as XML: `wevtutil qe /f:xml` (<Event> elements) and PowerShell Export-Clixml."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from hpforensics.evtx.formats import LogReader, register
from hpforensics.evtx.records import RawRecord, ReadStats


@register
class XmlExportReader(LogReader):
    kind = "xml"
    suffixes = (".xml",)

    def sniff(self, head: bytes, path: Path) -> bool:
        return head.startswith(b"<")

    def read(self, path: str, stats: ReadStats, *, parser: str,
             hash_input: bool) -> Iterator[RawRecord]:
        from hpforensics.evtx.exports import read_xml  # ElementTree only when an export is read

        return read_xml(path, stats)
