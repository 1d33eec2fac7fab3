"""Chunk selection (the reader's fast path): chunks ruled out on their bytes are counted, not
parsed, and nothing the full parse would keep is lost. Checked on the real logs and the fleet."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from evtx import PyEvtxParser

from hpforensics.evtx import readers
from hpforensics.evtx.chunks import SelectedChunks, scan_chunks
from hpforensics.evtx.readers import ALL_EVENTS, SOME_EVENTS, json_relevant, read_evtx
from hpforensics.evtx.records import ReadStats
from hpforensics.evtx.select import RecordSelector

REPO = Path(__file__).resolve().parents[2]


def _files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "evtx").glob("*.evtx")) + sorted(
        (REPO / "samples" / "evtx").rglob("*.evtx"))


def _ids(source) -> list[int]:
    out: list[int] = []
    records = PyEvtxParser(source, number_of_threads=1).records_json()
    while True:
        try:
            out.extend(r["event_record_id"] for r in records)
            return out
        except RuntimeError:
            continue


def test_selected_chunks_are_read_in_place_and_the_rest_counted(shared_data: Path) -> None:
    """Every other intact chunk through the view: the parser returns exactly those chunks'
    records, and the header walk counts the others as the parser would."""
    checked = 0
    for path in _files(shared_data):
        with open(path, "rb") as fh:
            full = _ids(fh)
            flip = itertools.cycle((True, False))
            scan = scan_chunks(fh, os.path.getsize(path), lambda _chunk: next(flip))
            if scan.damaged:
                continue
            part = _ids(SelectedChunks(fh, scan.wanted_offsets)) if scan.wanted_offsets else []
        assert len(part) + scan.unwanted_records == len(full), path
        assert set(part) <= set(full)
        checked += 1
    assert checked >= 25


def _all_relevant(path: Path) -> tuple[list, int]:
    """The reference: every record parsed, the full JSON test on each."""
    with open(path, "rb") as fh:
        records = PyEvtxParser(fh, number_of_threads=1).records_json()
        kept, count = [], 0
        while True:
            try:
                for item in records:
                    count += 1
                    if json_relevant(item["data"]):
                        kept.append(readers.raw_from_json(item["data"], item["timestamp"]))
                break
            except RuntimeError:
                continue
    return kept, count


def test_reader_keeps_what_a_full_parse_keeps(shared_data: Path) -> None:
    """Every real log and every log of the sample fleet: the records the reader yields (the
    selector's size patches applied) are exactly those a full parse keeps, and the counts agree."""
    checked = 0
    for path in _files(shared_data):
        stats = ReadStats(str(path))
        got = list(read_evtx(str(path), stats))
        want, count = _all_relevant(path)
        assert got == want, path
        assert stats.records == count, path
        checked += 1
    assert checked >= 30


@pytest.mark.parametrize("name", ["security.evtx", "system.evtx", "plaso-System.evtx"])
def test_reader_on_intact_real_logs_warns_of_nothing(shared_data: Path, name: str) -> None:
    stats = ReadStats(str(shared_data / "evtx" / name))
    assert list(read_evtx(stats.source, stats)) and not stats.warnings or name == "security.evtx"
    assert not stats.warnings


def test_selector_rules_out_security_and_sees_mentions(shared_data: Path) -> None:
    """security.evtx has no update or boot provider: none of its 2,261 records reaches the
    parser (the logon process name 'User32' no longer keeps chunks, as a byte test did); the
    fleet's WaaSMedic log mentions hotpatching."""
    test = RecordSelector(ALL_EVENTS, SOME_EVENTS)
    path = shared_data / "evtx" / "security.evtx"
    with open(path, "rb") as fh:
        scan = scan_chunks(fh, os.path.getsize(path), test)
    assert scan.unwanted_records == 2261 and not scan.wanted_offsets and not test.mentions
    medic = next((REPO / "samples" / "evtx").rglob("*WaaSMedic*.evtx"))
    test = RecordSelector(ALL_EVENTS, SOME_EVENTS)
    with open(medic, "rb") as fh:
        scan = scan_chunks(fh, os.path.getsize(medic), test)
    assert test.mentions and scan.wanted_offsets and scan.unwanted_records == 0
