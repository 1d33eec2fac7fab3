"""The C record selector (csrc/evtxscan): exact on real logs, a superset by construction, and
safe on hostile chunks (its self-check driver runs under AddressSanitizer + UBSan)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from evtx import PyEvtxParser

from hpforensics.evtx.chunks import SelectedChunks, scan_chunks
from hpforensics.evtx.readers import ALL_EVENTS, SOME_EVENTS, json_relevant
from hpforensics.evtx.select import RecordPick, RecordSelector, pick

REPO = Path(__file__).resolve().parents[2]
SELECT = REPO / "csrc" / "evtxscan"


def _relevant_ids(source) -> tuple[set[int], int]:
    ids, count = set(), 0
    records = PyEvtxParser(source, number_of_threads=1).records_json()
    while True:
        try:
            for item in records:
                count += 1
                if json_relevant(item["data"]):
                    ids.add(item["event_record_id"])
            return ids, count
        except RuntimeError:
            continue


def test_selector_is_exact_on_intact_real_logs(shared_data: Path) -> None:
    """On the real System logs the parser is handed the relevant records and, per chunk, at
    most the chunk's first record besides (every walk starts there): nothing else."""
    for name, relevant_count in (("system.evtx", 415), ("plaso-System.evtx", 95),
                                 ("security.evtx", 0)):
        path = shared_data / "evtx" / name
        with open(path, "rb") as fh:
            scan = scan_chunks(fh, os.path.getsize(path), RecordSelector(ALL_EVENTS, SOME_EVENTS))
            assert not scan.damaged
            view = SelectedChunks(fh, scan.wanted_offsets, scan.patches)
            parsed = []
            if scan.wanted_offsets:
                records = PyEvtxParser(view, number_of_threads=1).records_json()
                parsed = [(r["event_record_id"], json_relevant(r["data"])) for r in records]
        relevant, count = _relevant_ids(str(path))
        assert len(relevant) == relevant_count
        assert {i for i, ok in parsed if ok} == relevant  # nothing relevant stepped over
        assert len(parsed) <= len(relevant) + len(scan.wanted_offsets)
        assert len(parsed) + scan.skipped_records + scan.unwanted_records == count


def test_pick_patches_step_over_exactly_the_unkept_records(shared_data: Path) -> None:
    """`pick` on a real chunk with every third record kept: the parser, given the patched chunk,
    yields the first record and the kept ones, in order, and nothing else."""
    path = shared_data / "evtx" / "system.evtx"
    with open(path, "rb") as fh:
        fh.seek(0x1000)
        chunk = bytearray(fh.read(0x10000))
        starts, at = [], 0x200
        free = int.from_bytes(chunk[0x30:0x34], "little")
        while at < free and chunk[at:at + 4] == b"**\0\0":
            starts.append(at)
            at += int.from_bytes(chunk[at + 4:at + 8], "little")
        kept = tuple(starts[2::3])
        choice = pick(chunk, len(starts), at, kept)
        assert isinstance(choice, RecordPick) and choice.parsed == len(kept) + 1
        ids = [int.from_bytes(chunk[s + 8:s + 16], "little") for s in (starts[0], *kept)]
        view = SelectedChunks(fh, [0x1000], {0x1000: choice.patches})
        got = [r["event_record_id"] for r in PyEvtxParser(view, number_of_threads=1).records_json()]
    assert got == ids
    assert choice.patches and path.read_bytes()[0x1000:0x11000] == chunk  # the view only


def test_c_patches_are_picks(shared_data: Path) -> None:
    """The selector's own parsed count and size patches equal `pick`'s (the definition) on
    every chunk of the real logs and the sample fleet."""
    from hpforensics import _evtxscan
    from hpforensics.evtx.select import RecordSelector

    rules, compared = RecordSelector(ALL_EVENTS, SOME_EVENTS)._rules, 0
    paths = [*sorted((shared_data / "evtx").glob("*.evtx")),
             *sorted((REPO / "samples" / "evtx").rglob("*.evtx"))]
    for path in paths:
        data = path.read_bytes()
        for offset in range(0x1000, len(data) - 0x10000 + 1, 0x10000):
            chunk = data[offset:offset + 0x10000]
            got = _evtxscan.select(chunk, rules) if chunk.startswith(b"ElfChnk\0") else None
            if got is None:
                continue
            records, end, kept, _mentions, _native, parsed, patches = got
            want = pick(chunk, records, end, kept)
            assert (parsed, patches) == (want.parsed, want.patches), (path.name, hex(offset))
            compared += bool(kept)
    assert compared > 50


def test_selector_driver_under_sanitizers(tmp_path: Path, shared_data: Path) -> None:
    """Every chunk of the real logs and of one sample device, then 300 hostile mutations of
    each (flipped bits, huge counts, offsets pointing anywhere), selected and decoded: no read
    outside the chunk, kept offsets always ascending record starts inside the walk, every field
    the decoder reports inside the chunk and renderable."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is needed to build the extension and this test"
    exe = tmp_path / "evtxscan_driver"
    build = subprocess.run(
        [cc, "-std=c11", "-O1", "-g", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
         str(SELECT / "tests" / "driver.c"), str(SELECT / "select.c"), str(SELECT / "decode.c")],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    files = sorted(str(p) for p in (shared_data / "evtx").glob("*.evtx"))
    files += sorted(str(p) for p in (REPO / "samples" / "evtx" / "HP-WS-001").rglob("*.evtx"))
    run = subprocess.run([str(exe), *files], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 failures" in run.stdout
    assert int(run.stdout.split(" checks")[0].split()[-1]) > 500_000
    assert int(run.stdout.split(" decoded")[0].split()[-1]) > 100_000  # the decoder ran too


def test_reader_hashes_the_input_on_its_integrity_read(shared_data: Path, tmp_path: Path) -> None:
    """The SHA-256 the reader takes on its chunk scan is the file's, for intact, truncated and
    non-EVTX inputs alike (custody must not depend on the file parsing)."""
    import hashlib

    from hpforensics.evtx.readers import read_evtx
    from hpforensics.evtx.records import ReadStats

    junk = tmp_path / "not-evtx.evtx"
    junk.write_bytes(b"MZ" + bytes(range(256)) * 600)
    for path in [*sorted((shared_data / "evtx").glob("*.evtx")), junk]:
        stats = ReadStats(str(path))
        list(read_evtx(str(path), stats, hash_input=True))
        assert stats.sha256 == hashlib.sha256(path.read_bytes()).hexdigest(), path


def test_chunk_whose_last_record_id_names_a_middle_record(shared_data: Path,
                                                          tmp_path: Path) -> None:
    """The parser stops a chunk after the record its header calls the last one, even with
    records behind it: the view must stop there too (that record is handed over, not skipped),
    so the reader gives exactly what a full parse gives."""
    import struct
    import zlib

    from hpforensics.evtx.readers import read_evtx, raw_from_json
    from hpforensics.evtx.records import ReadStats

    data = bytearray((shared_data / "evtx" / "system.evtx").read_bytes())
    chunk = 0x1000
    starts, at = [], chunk + 0x200
    free = chunk + struct.unpack_from("<I", data, chunk + 0x30)[0]
    while at < free and data[at:at + 4] == b"**\0\0":
        starts.append(at)
        at += struct.unpack_from("<I", data, at + 4)[0]
    middle = starts[len(starts) // 3]
    struct.pack_into("<Q", data, chunk + 0x20, struct.unpack_from("<Q", data, middle + 8)[0])
    struct.pack_into("<I", data, chunk + 0x7C,
                     zlib.crc32(data[chunk + 0x80:chunk + 0x200],
                                zlib.crc32(data[chunk:chunk + 0x78])))
    path = tmp_path / "last-id.evtx"
    path.write_bytes(data)

    want, count = [], 0
    for item in PyEvtxParser(str(path), number_of_threads=1).records_json():
        count += 1
        if json_relevant(item["data"]):
            want.append(raw_from_json(item["data"], item["timestamp"]))
    stats = ReadStats(str(path))
    assert list(read_evtx(str(path), stats)) == want
    assert stats.records == count == 1881 - (len(starts) - len(starts) // 3 - 1)


def test_mention_in_a_field_name_stored_in_another_template(tmp_path: Path) -> None:
    """Element names are stored once per chunk and referenced by offset: an event whose only
    mention of hotpatching is a UserData element *name* first written by another event's
    template must still reach the parser, as a full parse's JSON test keeps it. (EventData
    field names are attribute values, literal text inside the template itself.)"""
    import datetime as dt
    import sys

    sys.path.insert(0, str(REPO / "samples"))
    from evtx_writer.event import Event, UserData
    from evtx_writer.writer import write_evtx

    from hpforensics.evtx.readers import raw_from_json, read_evtx
    from hpforensics.evtx.records import ReadStats

    t0 = dt.datetime(2025, 2, 12, 3, 0, tzinfo=dt.timezone.utc)

    def ev(i: int, **kw) -> Event:
        return Event("Contoso-Agent", 100 + i, t0 + dt.timedelta(minutes=i), "HOST1",
                     "Application", provider_guid="{11111111-2222-3333-4444-555555555555}", **kw)

    events = [ev(0, data={"HotpatchState": "1"}),                   # defines the name inline
              ev(1, data={"Status": "ok"}),                          # unrelated
              ev(2, data={"HotpatchState": "2", "Other": "x"}),      # refers to it by offset
              ev(3, user_data=UserData("AgentState", "urn:contoso", {"HotpatchState": "3"})),
              ev(4, data={"Status": "still ok"}),
              # another UserData shape: a new template naming the same element by offset
              ev(5, user_data=UserData("AgentState", "urn:contoso",
                                       {"Extra": "y", "HotpatchState": "4"}))]
    path = tmp_path / "names.evtx"
    write_evtx(path, events)
    want = [raw_from_json(r["data"], r["timestamp"])
            for r in PyEvtxParser(str(path), number_of_threads=1).records_json()
            if json_relevant(r["data"])]
    assert [r.event_id for r in want] == [100, 102, 103, 105]
    stats = ReadStats(str(path))
    assert list(read_evtx(str(path), stats)) == want
