"""The log formats behind one interface: discovery and reading find readers in the registry
(hpforensics.evtx.formats), so a new format is one module; shown here with a reader the test
itself adds, for gzip-compressed .evtx files as some collectors store them."""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Iterator

import pytest

from hpforensics.evtx import formats
from hpforensics.evtx.ingest import discover
from hpforensics.evtx.records import RawRecord, ReadStats
from hpforensics.timeline.reading import read_item


def test_every_format_has_one_reader_and_is_found_by_name() -> None:
    # in a fresh interpreter where one format module was imported before anything asked
    probe = ("import hpforensics.evtx.formats.registry as r, hpforensics.evtx.formats as f; "
             "print(sorted(x.kind for x in f.readers()))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['etl', 'evtx', 'json', 'registry', 'xml']"
    kinds = [r.kind for r in formats.readers()]
    assert sorted(kinds) == ["etl", "evtx", "json", "registry", "xml"]
    cases = {
        "C/Windows/System32/winevt/Logs/System.evtx": "evtx",
        "export/system.xml": "xml", "Get-WinEvent.json": "json", "events.jsonl": "json",
        "trace/WindowsUpdate.20261101.etl": "etl", "HOST/registry/hotpatch.reg": "registry",
        "results/Windows.Hotpatch.Collect%2FEnrolment.json": "registry",
        "C/Windows/System32/config/SOFTWARE": "registry", "notes.txt": None, "README": None,
    }
    assert {name: formats.kind_of(name) for name in cases} == cases


def test_content_decides_when_the_name_says_nothing(shared_data: Path, tmp_path: Path) -> None:
    evtx = tmp_path / "log1"
    shutil.copyfile(shared_data / "evtx" / "system.evtx", evtx)
    (tmp_path / "log2").write_bytes(b"\xef\xbb\xbf<Events><Event/></Events>")
    (tmp_path / "log3").write_bytes(b"  [{}]")
    (tmp_path / "log4").write_bytes(b"plain text")
    assert [formats.sniff(p, p.read_bytes()[:64]) for p in sorted(tmp_path.iterdir())] == [
        "evtx", "xml", "json", None]
    with pytest.raises(Exception, match="unsupported input kind 'csv'"):
        formats.reader_for("csv", "x.csv")


class GzipEvtx(formats.LogReader):
    kind = "evtx.gz"
    suffixes = (".gz",)

    def read(self, path: str, stats: ReadStats, *, parser: str,
             hash_input: bool) -> Iterator[RawRecord]:
        with tempfile.NamedTemporaryFile(suffix=".evtx") as plain:
            with gzip.open(path, "rb") as packed:
                shutil.copyfileobj(packed, plain)
            plain.flush()
            yield from formats.reader_for("evtx").read(plain.name, stats, parser=parser,
                                                       hash_input=False)


def test_a_new_format_is_one_class_and_nothing_else_changes(shared_data: Path,
                                                            tmp_path: Path) -> None:
    real = shared_data / "evtx" / "system.evtx"
    with gzip.open(tmp_path / "System.evtx.gz", "wb") as fh:
        fh.write(real.read_bytes())
    assert formats.kind_of("System.evtx.gz") is None  # unknown until registered
    formats.register(GzipEvtx)
    try:
        (item,) = discover([tmp_path])
        assert item.kind == "evtx.gz"
        assert formats.kind_of(str(PurePosixPath(item.path))) == "evtx.gz"
        packed = read_item(item)
        (plain_item,) = discover([real])
        plain = read_item(plain_item)
        assert packed.stats.warnings == [] and packed.events
        assert ([(e.time, e.event_id, e.category) for e in packed.events]
                == [(e.time, e.event_id, e.category) for e in plain.events])
    finally:
        formats._READERS[:] = [r for r in formats._READERS if not isinstance(r, GzipEvtx)]
