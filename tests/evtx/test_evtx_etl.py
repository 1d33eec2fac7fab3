"""ETW traces (.etl): the sample traces against their plan, through dissect.etl, an independent
parser (etl-parser), the reader, the CLI, and damaged copies."""
from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dissect.etl import ETL
from dissect.etl.headers.event import EventHeader

from hpforensics.evtx.etw_schema import decode, provider
from hpforensics.evtx.etw_tracelogging import decode_event, parse_schema
from hpforensics.evtx.ingest import discover
from hpforensics.timeline.reading import read_item

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ETL_DIR = SAMPLES / "etl"
PLAN = json.loads((SAMPLES / "etl-plan.json").read_text())
FILES = {f["path"]: f for f in PLAN["files"]}
# the boot session with four buffers: the one the damage tests cut and break
LONG = next(f for f in PLAN["files"] if f["buffers"] == 4)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _generate(out: Path) -> dict:
    plan = out / "plan.json"
    subprocess.run([sys.executable, str(SAMPLES / "build_etl.py"), "--out", str(out),
                    "--plan", str(plan)], check=True, capture_output=True)
    return json.loads(plan.read_text())


def test_generator_is_deterministic_and_matches_the_committed_sample(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert _generate(first) == _generate(second) == PLAN
    for rel in FILES:
        data = (first / rel).read_bytes()
        assert data == (second / rel).read_bytes() == (ETL_DIR / rel).read_bytes(), rel
    assert sorted(p.relative_to(ETL_DIR).as_posix() for p in ETL_DIR.rglob("*.etl")) == \
        sorted(FILES)


@pytest.mark.parametrize("rel", sorted(FILES))
def test_dissect_etl_reads_exactly_the_planned_events(rel: str) -> None:
    planned = FILES[rel]
    with open(ETL_DIR / rel, "rb") as fh:
        etl = ETL(fh)
        assert etl.logfile_header.logger_name == planned["logger"]
        assert etl.logfile_header.log_filename.endswith(Path(rel).name)
        assert etl.logfile_header.buffers_written == planned["buffers"]
        assert etl.buffer_size == planned["buffer_size"]
        assert etl.pointer_size == 8
        records = list(etl)
    assert len(records) == planned["records"]
    assert not isinstance(records[0].header, EventHeader)  # the logfile header event
    for rec, want in zip(records[1:], planned["events"], strict=True):
        h = rec.header
        assert isinstance(h, EventHeader)
        assert (h.descriptor.id, h.descriptor.version, h.descriptor.channel) == \
            (want["event_id"], want["version"], want["channel"])
        assert str(uuid.UUID(bytes_le=bytes(h.header.ProviderId))) == want["provider_guid"]
        # dissect.etl's own time (float arithmetic) is within a microsecond of the plan's
        assert abs(h.timestamp - _utc(want["time"])) <= dt.timedelta(microseconds=1)
        assert h.size == want["size"]
        # the Windows Update Client events carry the SID and session items the audit session
        # asked for, TraceLogging events their provider traits and schema; the user data
        # follows them
        items = h.header_extensions if h.header.Flags & 1 else []
        payload = bytes(h.payload)[sum(i.size for i in items):]
        if want["tracelogging"]:
            assert [i.ext_type.name for i in items] == ["PROV_TRAITS", "EVENT_SCHEMA_TL"]
            assert items[0].data["ProviderName"].decode() == want["provider"]
            schema = parse_schema(items[1].data["EventSchema"])
            assert schema is not None and schema.event_name == want["tracelogging"]
            assert decode_event(schema, payload) == want["data"]
            continue
        if want["provider"] == "Microsoft-Windows-WindowsUpdateClient":
            assert [(i.ext_type.name, i.data) for i in items] == [
                ("SID", {"Sid": "S-1-5-18"}), ("TS_ID", {"SessionId": 0})]
        else:
            assert items == []
        prov = provider(uuid.UUID(want["provider_guid"]))
        assert prov is not None and prov.name == want["provider"]
        fields = prov.templates[(want["event_id"], want["version"])]
        assert decode(fields, payload) == want["data"]


def _etl_parser_events(path: Path) -> list[tuple[int, int, str, dict, list[int]]]:
    """(id, version, provider GUID, decoded fields) of every EVENT_HEADER record, as the
    independent etl-parser package reads them (its own structures and generated parsers),
    and the types of the extended data items before the user data."""
    from etl.etl import IEtlFileObserver, build_from_stream
    from etl.parsers.etw.core import build_etw, guid as etw_guid

    out: list[tuple[int, int, str, dict, list[int]]] = []

    class Collect(IEtlFileObserver):
        def on_event_record(self, event) -> None:
            eh = event.source.event_header
            gid = str(_plain(eh.provider_id))
            desc = eh.event_descriptor
            items = event.source.extended_data or []
            try:
                if any(i.ext_type == 11 for i in items):  # TraceLogging: schema in the event
                    tl = event.parse_tracelogging()
                    fields = {"_name": tl.get_name(), **tl}
                else:
                    parsed = build_etw(etw_guid(gid), desc.Id, desc.Version,
                                       event.source.user_data)
                    fields = {k: _plain(v) for k, v in parsed.source.items()
                              if not k.startswith("_")}
            except Exception:  # noqa: BLE001 - etl-parser has no parser for this provider
                fields = {}
            out.append((desc.Id, desc.Version, gid, fields, [i.ext_type for i in items]))

        def on_trace_record(self, event) -> None: ...
        def on_perfinfo_trace(self, event) -> None: ...
        def on_system_trace(self, event) -> None: ...
        def on_win_trace(self, event) -> None: ...

    build_from_stream(path.read_bytes()).parse(Collect())
    return out


def _plain(value):
    kind = getattr(value, "type", None)
    if kind == "WString":
        return bytes(value.string).decode("utf-16-le").rstrip("\0")
    if kind == "Guid":
        i = value.inner
        return uuid.UUID(bytes_le=i.data1.to_bytes(4, "little") + i.data2.to_bytes(2, "little")
                         + i.data3.to_bytes(2, "little") + bytes(i.data4))
    return value


@pytest.mark.parametrize("rel", sorted(FILES))
def test_an_independent_parser_agrees(rel: str) -> None:
    """etl-parser decodes the Windows Update Client and Kernel-Process events by name (it has
    no Kernel-General parser) and the TraceLogging events from their schema: the same values
    as planned."""
    got = _etl_parser_events(ETL_DIR / rel)
    planned = FILES[rel]["events"]
    assert [(i, v, g) for i, v, g, _, _ in got] == \
        [(e["event_id"], e["version"], e["provider_guid"]) for e in planned]
    decoded = 0
    for (_, _, _, fields, ext), want in zip(got, planned):
        wuc = want["provider"] == "Microsoft-Windows-WindowsUpdateClient"
        # SID, TS_ID; PROV_TRAITS, EVENT_SCHEMA_TL
        assert ext == ([2, 3] if wuc else [12, 11] if want["tracelogging"] else [])
        if want["tracelogging"]:
            assert fields.pop("_name") == want["tracelogging"]
        if not fields:
            assert want["provider"] == "Microsoft-Windows-Kernel-General"
            continue
        decoded += 1
        assert set(fields) == set(want["data"])
        for name, value in fields.items():
            text = want["data"][name]
            if isinstance(value, uuid.UUID):
                assert "{" + str(value).upper() + "}" == text
            elif isinstance(value, int) and text.startswith("0x"):
                assert value == int(text, 16)
            else:
                assert str(value) == text, name
    assert decoded >= len(planned) - 2


def _as_evtx(event: dict) -> dict:
    """The planned fields under the names the EVTX path gives them."""
    from hpforensics.evtx.etl_reader import EVTX_NAMES

    names = EVTX_NAMES.get(event["provider"], {})
    return {names.get(k, k): v for k, v in event["data"].items()}


def test_reader_maps_records_like_the_evtx_path() -> None:
    from hpforensics.evtx.exports import read_etl
    from hpforensics.evtx.records import ReadStats

    for rel, planned in FILES.items():
        stats = ReadStats(rel)
        raws = list(read_etl(str(ETL_DIR / rel), stats, relevant_only=False))
        assert stats.records == planned["records"] and not stats.warnings
        assert [(r.provider, r.event_id, r.record_id, r.time, r.data) for r in raws] == [
            (e["provider"], e["event_id"], e["record"], _utc(e["time"]), _as_evtx(e))
            for e in planned["events"]]
        # channel 8 is the System log; the analytic and TraceLogging channels have no log
        assert [r.channel for r in raws] == [
            "System" if e["channel"] == 8 else "ETW" for e in planned["events"]]
        assert [r.message for r in raws] == [
            " ".join([e["tracelogging"], *(f"{k}={v}" for k, v in e["data"].items())])
            if e["tracelogging"] else "" for e in planned["events"]]
        assert {r.computer for r in raws} == {""}  # the device comes from the collection


def test_reader_gives_only_what_can_matter_by_default() -> None:
    """As for .evtx: the records of the providers and IDs the timeline reads, and those that
    mention hotpatch; the others are counted and not decoded."""
    from hpforensics.evtx.exports import read_etl
    from hpforensics.evtx.records import ReadStats

    for rel, planned in FILES.items():
        stats = ReadStats(rel)
        got = [r.record_id for r in read_etl(str(ETL_DIR / rel), stats)]
        assert stats.records == planned["records"]
        assert got == [e["record"] for e in planned["events"] if e["category"]]


def test_timeline_cli_on_the_sample(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli("timeline", ETL_DIR, "-o", out, "--no-html")
    assert proc.returncode == 0, proc.stderr
    with open(out / "events.csv", newline="") as fh:
        events = list(csv.DictReader(fh))
    want = sorted((PLAN["device"], e["time"], e["provider"], str(e["event_id"]), str(e["record"]),
                   e["category"], rel)
                  for rel, f in FILES.items() for e in f["events"] if e["category"])
    got = sorted((r["device"], r["time"].replace(".000000Z", "Z"), r["provider"], r["event_id"],
                  r["record_id"], r["category"], Path(r["source"]).relative_to(ETL_DIR).as_posix())
                 for r in events)
    assert got == want
    installed = {r["kb"]: r for r in events if r["category"] == "update-installed"}
    assert {kb: r["update_class"] for kb, r in installed.items()} == {
        m["installed_kb"]: m["kind"] for m in PLAN["months"].values()}
    with open(out / "compliance.csv", newline="") as fh:
        months = {r["month"]: r for r in csv.DictReader(fh)}
    assert set(months) == set(PLAN["months"])
    for month, m in PLAN["months"].items():
        row = months[month]
        assert row["device"] == PLAN["device"] and row["compliant"] == "true", row
        assert (row["expected_kb"], row["installed_kb"], row["installed_at"], row["effective_at"],
                int(row["failures"])) == (m["expected_kb"], m["installed_kb"], m["installed_at"],
                                          m["effective_at"], m["failures"])
        assert row["how"] == ("with reboot" if m["reboot"] else "hotpatch, no reboot")
    timeline = list(csv.DictReader(open(out / "timeline.csv", newline="")))
    assert any(r["category"] == "hotpatch-mention" and "hotpatch" in r["detail"] for r in timeline)
    # the patch image's load and the kernel's TraceLogging record name the hotpatch's KB
    mentions = [r for r in events if r["category"] == "hotpatch-mention"]
    assert sorted((r["provider"], r["kb"]) for r in mentions) == [
        ("Microsoft-Windows-Kernel-Process", "KB5052105"),
        ("Microsoft.Windows.Kernel.HotPatch", "KB5052105"),
        ("Microsoft.Windows.Kernel.HotPatch", "KB5053636")]


def test_timeline_cli_with_workers_gives_the_same_events(cli, tmp_path: Path) -> None:
    """With --jobs 2 the events cross a process boundary: they must pickle (a cstruct integer
    left in a record would not) and come out the same."""
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        proc = cli("timeline", ETL_DIR, "-o", out, "--no-html", "--no-hash", "--jobs", jobs)
        assert proc.returncode == 0, proc.stderr
        outs.append((out / "events.csv").read_text())
    assert outs[0] == outs[1] and outs[0].count("\n") > 30


def _damaged(tmp_path: Path, how: str) -> tuple[Path, int]:
    """A copy of the four-buffer trace, damaged; and the file offset the warning must name."""
    src = ETL_DIR / LONG["path"]
    dst = tmp_path / "HP-ETW-01" / "C" / "Windows" / "System32" / "LogFiles" / "WMI" / src.name
    dst.parent.mkdir(parents=True)
    data = bytearray(src.read_bytes())
    size = LONG["buffer_size"]
    if how == "truncated-in-buffer":
        cut = 2 * size + 1500
        data, at = data[:cut], cut
    elif how == "truncated-at-buffer":
        data, at = data[:3 * size], 3 * size
    elif how == "bad-buffer-header":
        data[2 * size:2 * size + 4] = (1234).to_bytes(4, "little")
        at = 2 * size
    else:  # bad-record: the first record of buffer 1 loses its marker
        first = next(e for e in LONG["events"] if e["buffer"] == 1)
        data[first["offset"]:first["offset"] + 4] = b"\0\0\0\0"
        at = first["offset"]
    dst.write_bytes(bytes(data))
    return dst, at


def _kept(how: str) -> list[dict]:
    size = LONG["buffer_size"]
    events = LONG["events"]
    if how == "truncated-in-buffer":
        return [e for e in events if e["offset"] + e["size"] <= 2 * size + 1500]
    if how == "truncated-at-buffer":
        return [e for e in events if e["buffer"] < 3]
    if how == "bad-buffer-header":
        return [e for e in events if e["buffer"] != 2]
    first = next(e for e in events if e["buffer"] == 1)
    return [e for e in events if e is not first]


@pytest.mark.parametrize("how", ["truncated-in-buffer", "truncated-at-buffer",
                                 "bad-buffer-header", "bad-record"])
def test_damaged_trace_keeps_every_good_event(tmp_path: Path, how: str) -> None:
    from hpforensics.evtx.exports import read_etl
    from hpforensics.evtx.records import ReadStats

    path, at = _damaged(tmp_path, how)
    stats = ReadStats(str(path))
    raws = list(read_etl(str(path), stats, relevant_only=False))
    kept = _kept(how)
    assert len(kept) < len(LONG["events"])
    assert [(r.event_id, r.time, r.data) for r in raws] == [
        (e["event_id"], _utc(e["time"]), _as_evtx(e)) for e in kept]
    numbers = [r.record_id for r in raws]
    if how.startswith("bad"):  # records lost to damage cannot be counted: later ones shift
        assert numbers == sorted(set(numbers)) and numbers[0] == 2
    else:
        assert numbers == [e["record"] for e in kept]
    assert len(stats.warnings) == 1, stats.warnings
    assert stats.warnings[0].startswith(f"{path} at offset {at:#x}: ")


def test_damaged_trace_cli_exit_3(cli, tmp_path: Path) -> None:
    path, at = _damaged(tmp_path, "bad-buffer-header")
    proc = cli("timeline", path.parents[4], "-o", tmp_path / "out", "--no-html")
    assert proc.returncode == 3, proc.stderr
    assert f"{path.name} at offset {at:#x}" in proc.stderr and "Traceback" not in proc.stderr
    events = list(csv.DictReader(open(tmp_path / "out" / "events.csv", newline="")))
    want = [e for e in _kept("bad-buffer-header") if e["category"]]
    assert sorted((r["time"].replace(".000000Z", "Z"), r["event_id"]) for r in events) == \
        sorted((e["time"], str(e["event_id"])) for e in want)


def test_a_copy_of_the_sample_in_a_zip_reads_the_same(tmp_path: Path) -> None:
    rel = LONG["path"]
    archive = tmp_path / "Collection-HP-ETW-01-2025-04-22T163000Z"
    shutil.copytree(ETL_DIR / "HP-ETW-01", archive)
    zipped = shutil.make_archive(str(archive), "zip", archive)
    items = [i for i in discover([zipped]) if i.source.endswith(Path(rel).name)]
    part = read_item(items[0])
    assert not part.stats.warnings and part.stats.records == LONG["records"]
    assert {e.device for e in part.events} == {"HP-ETW-01"}
    assert len(part.events) == sum(1 for e in LONG["events"] if e["category"])


def test_counted_strings_and_times_from_a_bundled_manifest() -> None:
    """Kernel-General 5 (a string whose length is an earlier field) and 1 v1 (two FILETIMEs),
    laid out as TDH reads them; a payload cut short keeps the fields before the cut."""
    import struct

    kg = provider(uuid.UUID("a68ca8b7-004f-d7b6-a698-07e2de0f1f5d"))
    assert kg is not None and kg.name == "Microsoft-Windows-Kernel-General"
    text = "\\Registry\\Machine\\SYSTEM"
    payload = struct.pack("<IH", 0xC000009A, len(text)) + text.encode("utf-16-le") + b"tail"
    assert decode(kg.templates[(5, 0)], payload) == {
        "FinalStatus": "0xc000009a", "ExtraStringLength": str(len(text)), "ExtraString": text}
    assert decode(kg.templates[(5, 0)], payload[:10]) == {
        "FinalStatus": "0xc000009a", "ExtraStringLength": str(len(text))}
    new, old = 133_842_000_000_000_001, 2**63 - 1  # the second is past year 9999
    assert decode(kg.templates[(1, 1)], struct.pack("<QQ", new, old)) == {
        "NewTime": "2025-02-16T17:20:00.0000001Z", "OldTime": f"0x{old:x}"}


def test_hostile_payloads_and_schemas_decode_without_error() -> None:
    """What the reader meets in a damaged trace: any template, any bytes. Decoding stops at
    what it cannot size; it never raises or loops."""
    import random
    from importlib import resources

    rng = random.Random(7)
    root = resources.files("dissect.etl") / "manifests" / "xml"
    templates = 0
    for entry in root.iterdir():
        prov = provider(uuid.UUID(entry.name[1:-5])) if entry.name.endswith(".xml") else None
        for fields in (prov.templates.values() if prov else ()):
            templates += 1
            for size in (5, 200):
                decode(fields, rng.randbytes(size))
    assert templates > 30_000
    for _ in range(3000):  # TraceLogging schemas travel in the (possibly damaged) trace itself
        schema = parse_schema(rng.randbytes(rng.randrange(0, 120)))
        if schema is not None:
            decode_event(schema, rng.randbytes(rng.randrange(0, 120)))


def test_tracelogging_schema_arrays_counted_strings_and_out_types() -> None:
    """A schema with what the sample does not use: event tags, an OutType (HRESULT shown in
    hex), a variable-count array (UINT16 count in the data), a constant-count array (count in
    the schema), a counted string, then a custom-serialised field the decoder cannot size."""
    import struct

    def field(name: str, in_type: int, *extra: int) -> bytes:
        return name.encode() + b"\0" + bytes((in_type, *extra))

    body = (b"\x81\x02" + b"Probe\0"  # two tag bytes, chained
            + field("hr", 8 | 0x80, 15)  # UINT32, OutType HRESULT
            + field("ports", 6 | 0x40)  # UINT16[], count in the data
            + field("pair", 7 | 0x20) + struct.pack("<H", 2)  # INT32[2]
            + field("who", 22)  # counted UTF-16 string
            + field("blob", 1 | 0x60) + struct.pack("<H", 0)  # custom: stops decoding
            + field("after", 8))
    schema = parse_schema(struct.pack("<H", 2 + len(body)) + body)
    assert schema is not None and schema.event_name == "Probe"
    data = (struct.pack("<I", 0x80070005) + struct.pack("<HHHH", 3, 80, 443, 8080)
            + struct.pack("<ii", -1, 7) + struct.pack("<H", 6) + "SYS".encode("utf-16-le")
            + b"opaque")
    assert decode_event(schema, data) == {
        "hr": "0x80070005", "ports": "80, 443, 8080", "pair": "-1, 7", "who": "SYS"}
    assert parse_schema(b"\x02") is None


@pytest.fixture(scope="module")
def compressed(tmp_path_factory) -> tuple[Path, dict]:
    """The sample traces written LZNT1-compressed (EVENT_TRACE_COMPRESSED_MODE)."""
    out = tmp_path_factory.mktemp("compressed")
    return out, _generate_compressed(out)


def _generate_compressed(out: Path) -> dict:
    plan = out / "plan.json"
    subprocess.run([sys.executable, str(SAMPLES / "build_etl.py"), "--compress", "--out",
                    str(out), "--plan", str(plan)], check=True, capture_output=True)
    return json.loads(plan.read_text())


def _buffer_offsets(data: bytes) -> list[int]:
    offsets, at = [], 0
    while at + 0x48 <= len(data):
        offsets.append(at)
        at += int.from_bytes(data[at:at + 4], "little")
    return offsets


def test_compressed_traces_read_the_same(compressed) -> None:
    from hpforensics.evtx.exports import read_etl
    from hpforensics.evtx.records import ReadStats

    out, plan = compressed
    assert plan["compression"] == "LZNT1"
    for f in plan["files"]:
        data = (out / f["path"]).read_bytes()
        assert len(data) < FILES[f["path"]]["bytes"]  # stored smaller than the buffers
        sizes = [int.from_bytes(data[o:o + 4], "little") for o in _buffer_offsets(data)]
        assert sizes[0] == f["buffer_size"] and all(s < f["buffer_size"] for s in sizes[1:])
        stats = ReadStats(f["path"])
        raws = list(read_etl(str(out / f["path"]), stats, relevant_only=False))
        assert not stats.warnings and stats.records == f["records"]
        assert [(r.record_id, r.event_id, r.time, r.data) for r in raws] == [
            (e["record"], e["event_id"], _utc(e["time"]), _as_evtx(e))
            for e in FILES[f["path"]]["events"]]


@pytest.mark.parametrize("how", ["bad-header", "bad-data"])
def test_damaged_compressed_trace_keeps_the_other_buffers(compressed, tmp_path: Path,
                                                          how: str) -> None:
    """Compressed buffers vary in size: after a damaged header the next one is searched for;
    a buffer whose data does not decompress to its stated size costs its events only."""
    from hpforensics.evtx.exports import read_etl
    from hpforensics.evtx.records import ReadStats

    out, plan = compressed
    src = out / LONG["path"]
    data = bytearray(src.read_bytes())
    second = _buffer_offsets(bytes(data))[2]
    if how == "bad-header":
        data[second:second + 4] = (0x7FFFFFFF).to_bytes(4, "little")
    else:
        data[second + 0x60:second + 0x90] = b"\xff" * 0x30
    path = tmp_path / src.name
    path.write_bytes(bytes(data))
    stats = ReadStats(str(path))
    raws = list(read_etl(str(path), stats, relevant_only=False))
    kept = [e for e in LONG["events"] if e["buffer"] != 2]
    assert [(r.event_id, r.time, r.data) for r in raws] == [
        (e["event_id"], _utc(e["time"]), _as_evtx(e)) for e in kept]
    assert len(stats.warnings) == 1, stats.warnings
    assert stats.warnings[0].startswith(f"{path} at offset {second:#x}: buffer 2 ")


def test_a_trace_compressed_otherwise_than_lznt1_is_reported_once(compressed,
                                                                   tmp_path: Path) -> None:
    """Xpress-compressed traces are not read (no bound on what a crafted stream expands to):
    one warning, no events, no exception."""
    from hpforensics.evtx.exports import read_etl
    from hpforensics.evtx.records import ReadStats

    data = bytearray((compressed[0] / LONG["path"]).read_bytes())
    data[0x2C:0x2E] = (3).to_bytes(2, "little")  # the header buffer's State: XPRESS
    path = tmp_path / "xpress.etl"
    path.write_bytes(bytes(data))
    stats = ReadStats(str(path))
    assert list(read_etl(str(path), stats)) == []
    assert len(stats.warnings) == 1 and "compressed with format 3" in stats.warnings[0]


def test_mutated_traces_never_raise(compressed, tmp_path: Path) -> None:
    """Random byte changes and cuts in plain and compressed traces: warnings, never an
    exception or a hang; every event the reader still gives has a known provider or a GUID."""
    import random

    from hpforensics.evtx.exports import read_etl
    from hpforensics.evtx.records import ReadStats

    rng = random.Random(11)
    sources = [(ETL_DIR / LONG["path"]).read_bytes(), (compressed[0] / LONG["path"]).read_bytes()]
    path = tmp_path / "mutated.etl"
    warned = 0
    for n in range(300):
        data = bytearray(sources[n % 2])
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(data))
            data[at:at + rng.randrange(1, 9)] = rng.randbytes(rng.randrange(1, 9))
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        stats = ReadStats(str(path))
        for rec in read_etl(str(path), stats, relevant_only=False):
            assert rec.provider and isinstance(rec.data, dict)
        warned += bool(stats.warnings)
    assert warned > 50  # the mutations were noticed, not silently absorbed


def test_the_same_events_from_a_trace_and_from_an_event_log_normalise_alike(
        tmp_path: Path) -> None:
    """The long session's update, servicing and boot events written once more as an .evtx
    System/Setup log (samples/evtx_writer, as Windows renders them there): both inputs give the
    same normalised events, apart from where they came from."""
    if str(SAMPLES) not in sys.path:
        sys.path.insert(0, str(SAMPLES))
    from evtx_writer import windows as EW
    from evtx_writer import write_evtx

    device = PLAN["device"]
    log_events = []
    for e in LONG["events"]:
        when, d, eid = _utc(e["time"]), e["data"], e["event_id"]
        if e["provider"] == "Microsoft-Windows-WindowsUpdateClient":
            log_events.append(EW.wuc(eid, when, device, title=d["updateTitle"],
                                     update_id=uuid.UUID(d["updateGuid"]),
                                     revision=int(d["updateRevisionNumber"]),
                                     error_code=int(d.get("errorCode", "0"), 16)))
        elif e["provider"] == "Microsoft-Windows-Servicing":
            log_events.append(EW.servicing(
                eid, when, device, package=d["identifier"], client=d["client"],
                initial=d.get("currentPackageStateTextized", "Absent"),
                intended=d["targetPackageStateTextized"],
                error_code=int(d.get("errorCode", "0"), 16)))
        elif (e["provider"], eid) == ("Microsoft-Windows-Kernel-General", 12):
            log_events.append(EW.kernel_boot(when, device, int(d["BuildVersion"]),
                                             int(d["QfeVersion"])))
        elif (e["provider"], eid) == ("Microsoft-Windows-Kernel-General", 13):
            log_events.append(EW.kernel_shutdown(when, device))
    log = tmp_path / "System.evtx"
    write_evtx(log, log_events)

    def normalised(path: Path) -> list[tuple]:
        [item] = discover([path])
        part = read_item(item)
        assert not part.stats.warnings
        return [(ev.device, ev.time, ev.provider, ev.event_id, ev.category, ev.kb, ev.title,
                 ev.update_guid, ev.revision, ev.error_code, ev.result, ev.package_state,
                 ev.reboot_required, ev.os_build, ev.update_class, ev.release_month)
                for ev in part.events if ev.category != "hotpatch-mention"]

    from_trace = normalised(ETL_DIR / LONG["path"])
    assert len(from_trace) == len(log_events) > 20
    assert from_trace == normalised(log)


def test_a_trace_of_garbage_buffers_stops_after_a_bounded_number(tmp_path: Path) -> None:
    """A header buffer followed by 200 buffers of garbage: 64 warnings, then one saying the
    rest was not read (the work and the warnings stay bounded on hostile input)."""
    import struct

    from hpforensics.evtx.etl_buffers import MAX_DAMAGED
    from hpforensics.evtx.exports import read_etl
    from hpforensics.evtx.records import ReadStats

    size = LONG["buffer_size"]
    data = bytearray((ETL_DIR / LONG["path"]).read_bytes()[:size]) + b"A" * (200 * size)
    data[0x48 + 0x20 + 0x24:0x48 + 0x20 + 0x28] = struct.pack("<I", 201)  # BuffersWritten
    path = tmp_path / "garbage.etl"
    path.write_bytes(bytes(data))
    stats = ReadStats(str(path))
    assert list(read_etl(str(path), stats)) == []
    assert len(stats.warnings) == MAX_DAMAGED + 1
    assert stats.warnings[-1].endswith("damaged buffers: the rest of the trace was not read")
