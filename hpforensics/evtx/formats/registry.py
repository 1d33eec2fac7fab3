"""Hotpatch enrolment evidence from the registry: SOFTWARE / SYSTEM hive files (by their place,
`.../System32/config/SOFTWARE`, or their `regf` signature), `.reg` exports, and Velociraptor's
result sets of the Windows.Hotpatch.Collect artifact (JSON named by artifact and source)."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Iterator

from hpforensics.evtx.formats import LogReader, register
from hpforensics.evtx.hive import is_hive, is_hive_path
from hpforensics.evtx.records import RawRecord, ReadStats
from hpforensics.evtx.registry import is_results_file, read_registry


@register
class RegistryReader(LogReader):
    kind = "registry"
    suffixes = (".reg",)
    order = 10  # before the JSON reader: a result set is JSON by its suffix

    def claims(self, name: PurePosixPath) -> bool:
        if name.suffix.lower() in self.suffixes or is_results_file(str(name)):
            return True
        return not name.suffix and is_hive_path(name.parts)

    def sniff(self, head: bytes, path: Path) -> bool:
        # a hive given by itself (a damaged one where Windows keeps it)
        return is_hive(head) or is_hive_path(path.absolute().parts)

    def read(self, path: str, stats: ReadStats, *, parser: str,
             hash_input: bool) -> Iterator[RawRecord]:
        return read_registry(path, stats)
