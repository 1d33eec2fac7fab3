"""Hotpatch enrolment evidence from the registry: SOFTWARE / SYSTEM hive files (by their place,
`.../System32/config/SOFTWARE`, or their `regf` signature), `.reg` exports, and Velociraptor's
result sets of the Windows.Hotpatch.Collect artifact (JSON named by artifact and source)."""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterator

from hpforensics.evidence import open_evidence
from hpforensics.evtx.formats import LogReader, register
from hpforensics.evtx.hive import HIVE_NAMES, is_hive, is_hive_path, read_hive
from hpforensics.evtx.records import RawRecord, ReadStats
from hpforensics.evtx.registry import is_results_file, read_exported


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

    def read(self, path: str, stats: ReadStats, *, parser: str = "evtx",
             hash_input: bool = False) -> Iterator[RawRecord]:
        with open_evidence(path) as fh:
            head = fh.read(64)
        # a hive file: by its signature, or by its name when the base block is damaged
        if is_hive(head) or os.path.basename(path).lower() in HIVE_NAMES:
            return read_hive(path, stats)
        return read_exported(path, stats, head)


def read_registry(path: str, stats: ReadStats) -> Iterator[RawRecord]:
    """Any registry input (hive, `.reg` export, result set) read as discovery would read it."""
    return RegistryReader().read(path, stats)
