"""Readers on the real logs: counts, parser agreement, damaged files, exports, archives."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from evtx import PyEvtxParser

from hpforensics.evtx.ingest import device_from_parts, discover
from hpforensics.timeline.normalise import normalise
from hpforensics.timeline.reading import read_item
from hpforensics.evtx.readers import read_evtx, read_python_evtx
from hpforensics.evtx.records import ReadStats


@pytest.fixture(scope="module")
def evtx_dir(shared_data: Path) -> Path:
    return shared_data / "evtx"


def _events(path: Path, parser: str = "evtx"):
    [item] = discover([path])
    part = read_item(item, parser)
    return part.events, part.stats


def _ids(events) -> Counter:
    return Counter((e.provider, e.event_id) for e in events)


def test_system_log_update_events(evtx_dir: Path) -> None:
    events, stats = _events(evtx_dir / "system.evtx")
    assert stats.records == 1881 and stats.expected_records == 1881 and not stats.warnings
    ids = _ids(events)
    wuc = "Microsoft-Windows-WindowsUpdateClient"
    assert (ids[(wuc, 19)], ids[(wuc, 20)], ids[(wuc, 43)], ids[(wuc, 44)]) == (116, 5, 119, 137)
    failed = [e for e in events if e.event_id == 20]
    assert {e.error_code for e in failed} >= {"0x80248007"}
    assert all(e.result == "failure" and e.kb.startswith("KB") for e in failed)
    installed = [e for e in events if e.event_id == 19]
    assert all(e.result == "success" and e.update_guid and e.revision for e in installed)
    cu = [e for e in events if e.kb == "KB4025342"]
    assert cu and {e.update_class for e in cu} == {"standard"} and cu[0].release_month == "2017-07"
    msrt = [e for e in events if e.kb == "KB890830"]
    assert msrt and {e.update_class for e in msrt} == {"other"}


def test_boot_and_shutdown_evidence(evtx_dir: Path) -> None:
    events, stats = _events(evtx_dir / "plaso-System.evtx")
    assert stats.records == 5009
    ids = _ids(events)
    assert ids[("EventLog", 6005)] == 8 and ids[("EventLog", 6006)] == 6
    assert ids[("EventLog", 6009)] == 8 and ids[("EventLog", 6013)] == 48
    assert ids[("USER32", 1074)] == 9
    boots = [e for e in events
             if e.provider == "Microsoft-Windows-Kernel-General" and e.event_id == 12]
    assert boots and all(e.category == "boot" and e.os_build == "7601.17514" for e in boots)
    restarts = [e for e in events if e.event_id == 1074]
    assert all(e.category == "restart-initiated" and e.detail for e in restarts)


def test_python_evtx_reports_lost_records(evtx_dir: Path) -> None:
    stats = ReadStats("system.evtx")
    list(read_python_evtx(str(evtx_dir / "system.evtx"), stats))
    assert stats.records == 326 and stats.expected_records == 1881
    assert any("1555 lost" in w and "--parser evtx" in w for w in stats.warnings)


@pytest.mark.parametrize("name", ["system.evtx"])  # python-evtx takes ~40 s on plaso-System
def test_parsers_agree_on_shared_records(evtx_dir: Path, name: str) -> None:
    rust, _ = _events(evtx_dir / name, "evtx")
    py, py_stats = _events(evtx_dir / name, "python-evtx")
    read_by_py = {e.record_id for e in py}
    both = [e for e in rust if e.record_id in read_by_py]
    assert len(both) == len(py) > 0
    key = lambda e: e.record_id  # noqa: E731
    assert [dataclasses.asdict(e) for e in sorted(both, key=key)] == \
        [dataclasses.asdict(e) for e in sorted(py, key=key)]


def test_bad_chunk_keeps_intact_chunks(evtx_dir: Path) -> None:
    stats = ReadStats("bad.evtx")
    bad = evtx_dir / "sample_with_a_bad_chunk_magic.evtx"
    list(read_evtx(str(bad), stats, relevant_only=False))
    assert stats.records == 270
    text = "\n".join(stats.warnings)
    assert "at offset 0x11000: chunks 1-6" in text and "bad chunk header magic" in text
    assert "at offset 0xa1000: chunks 10-15" in text
    assert "at offset 0x1000: chunk 0: chunk records checksum mismatch" in text


def test_truncated_file_keeps_every_intact_record(evtx_dir: Path) -> None:
    stats = ReadStats("plaso-System2.evtx")
    records = list(read_evtx(str(evtx_dir / "plaso-System2.evtx"), stats, relevant_only=False))
    assert stats.records == len(records) == 194
    assert [w for w in stats.warnings if "at offset 0x21000" in w and "truncated" in w]


def test_wevtutil_xml_export_matches_evtx(evtx_dir: Path, tmp_path: Path) -> None:
    """An export in wevtutil's shape (Event elements back to back, no root) reads the same."""
    src = evtx_dir / "system.evtx"
    xml = tmp_path / "system.xml"
    with open(xml, "w", encoding="utf-8") as fh:
        for rec in PyEvtxParser(str(src)).records():
            body = rec["data"].split("?>", 1)[1].strip()
            # wevtutil prints SystemTime with all seven digits, as the record header holds it
            stamp = rec["timestamp"].replace(" UTC", "")
            body = re.sub(r'SystemTime="[^"]*"', f'SystemTime="{stamp}"', body, count=1)
            fh.write(body)
    from_evtx, _ = _events(src)
    from_xml, stats = _events(xml)
    assert stats.records == 1881
    strip = lambda e: {**dataclasses.asdict(e), "source": ""}  # noqa: E731
    assert [strip(e) for e in from_xml] == [strip(e) for e in from_evtx]


def test_get_winevent_json_export(evtx_dir: Path, tmp_path: Path) -> None:
    """Get-WinEvent | ConvertTo-Json: positional Properties, /Date(ms)/ times."""
    objs = []
    for rec in PyEvtxParser(str(evtx_dir / "system.evtx")).records_json():
        ev = json.loads(rec["data"])["Event"]
        sysf = ev["System"]
        if sysf["Provider"]["#attributes"]["Name"] != "Microsoft-Windows-WindowsUpdateClient":
            continue
        from hpforensics.evtx.records import parse_time

        stamp = parse_time(sysf["TimeCreated"]["#attributes"]["SystemTime"])
        objs.append({
            "Id": sysf["EventID"], "ProviderName": "Microsoft-Windows-WindowsUpdateClient",
            "LogName": "System", "MachineName": sysf["Computer"], "RecordId": sysf["EventRecordID"],
            "TimeCreated": f"/Date({int(stamp.timestamp() * 1000)})/",
            "Properties": [{"Value": v} for v in ev["EventData"].values()],
            "Message": "Installation Successful: ...",
        })
    path = tmp_path / "wu.json"
    path.write_text(json.dumps(objs, indent=2), encoding="utf-8")
    events, stats = _events(path)
    assert stats.records == len(objs) == 377 and not stats.warnings
    ids = Counter(e.event_id for e in events)
    assert (ids[19], ids[20], ids[43], ids[44]) == (116, 5, 119, 137)
    failed = [e for e in events if e.event_id == 20]
    assert all(e.error_code.startswith("0x8024") and e.kb for e in failed)


def test_unreadable_etl_is_said_plainly(evtx_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "trace.etl"
    fake.write_bytes(b"\x00" * 4096)
    events, stats = _events(fake)
    assert events == [] and any("not readable as an ETW trace" in w for w in stats.warnings)


def test_triage_folder_and_zip_layouts(evtx_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "cases" / "HOST-A" / "C" / "Windows" / "System32" / "winevt" / "Logs"
    logs.mkdir(parents=True)
    shutil.copy(evtx_dir / "plaso-System.evtx", logs / "System.evtx")
    archive = tmp_path / "cases" / "Collection-HOST-B-2025-06-01T101010Z.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(evtx_dir / "system.evtx",
                 "uploads/auto/C%3A/Windows/System32/winevt/Logs/System.evtx")
        zf.writestr("uploads/auto/C%3A/Windows/notes.txt", "not a log")
    items = discover([tmp_path / "cases"])
    assert [(i.device_hint, i.member) for i in items] == [
        ("HOST-B", "uploads/auto/C%3A/Windows/System32/winevt/Logs/System.evtx"),
        ("HOST-A", ""),
    ]
    part = read_item(items[0])
    events, stats = part.events, part.stats
    assert stats.records == 1881 and len(events) == 415
    kape = ["kape", "WS7", "C", "Windows", "System32", "winevt", "Logs", "a.evtx"]
    assert device_from_parts(kape) == "WS7"


def test_record_without_computer_takes_collection_name(evtx_dir: Path) -> None:
    from hpforensics.evtx.records import RawRecord

    raw = RawRecord("Microsoft-Windows-WindowsUpdateClient", 19, 7, None, "System", "",
                    {"updateTitle": "2025-02 Hotpatch (KB5052105)"})
    ev = normalise(raw, "x.evtx", "HOST-C", None)
    assert ev is not None and ev.device == "HOST-C" and ev.kb == "KB5052105"


@pytest.mark.parametrize("text, micro", [
    ("2017-07-12T17:16:28.2141616Z UTC", 214161),  # Rust parser, record header (truncated)
    ("2025-02-01T07:12:00Z UTC", 0),  # Rust parser drops a zero fraction
    ("2025-02-01T07:12:00.5Z UTC", 500000),
    ("2017-07-12 17:16:28.214161+00:00", 214161),  # python-evtx
    ("2017-07-12T19:16:28.2141616+02:00", 214161),  # local offset
])
def test_parse_time_forms(text: str, micro: int) -> None:
    from hpforensics.evtx.records import parse_time

    stamp = parse_time(text)
    assert stamp is not None and stamp.microsecond == micro
    assert stamp.utcoffset().total_seconds() == 0
    assert (stamp.hour, stamp.minute) in ((17, 16), (7, 12))


def test_fast_relevance_filter_finds_hotpatch_mentions() -> None:
    from hpforensics.evtx.readers import json_relevant

    def record(provider: str, data: str) -> str:
        return ('{"Event":{"System":{"Provider":{"#attributes":{"Name":"%s"}},"EventID":7},'
                '"EventData":{"Msg":"%s"}}}' % (provider, data))

    assert json_relevant(record("Contoso-Agent", "HOTPATCH enrolment done"))
    assert json_relevant(record("Contoso-Agent", "applied HotPatch KB5052105"))
    assert not json_relevant(record("Contoso-Agent", "dispatch queue drained"))
    assert json_relevant(record("Microsoft-Windows-Servicing", "anything"))
    assert not json_relevant(record("Microsoft-Windows-Kernel-General", "x"))  # ID 7 is not kept


def test_export_clixml(evtx_dir: Path, tmp_path: Path) -> None:
    """Get-WinEvent | Export-Clixml: CLIXML objects (MS-PSRP 2.2.5) with typed, named
    properties and the event data as a list of EventProperty objects."""
    from xml.sax.saxutils import escape

    from hpforensics.evtx.records import parse_time

    objs = []
    for i, rec in enumerate(PyEvtxParser(str(evtx_dir / "system.evtx")).records_json()):
        ev = json.loads(rec["data"])["Event"]
        sysf = ev["System"]
        if sysf["Provider"]["#attributes"]["Name"] != "Microsoft-Windows-WindowsUpdateClient":
            continue
        stamp = parse_time(sysf["TimeCreated"]["#attributes"]["SystemTime"])
        values = "".join(
            f'<Obj RefId="{i}-{n}"><TNRef RefId="1" /><ToString>System.Diagnostics.Eventing.'
            f'Reader.EventProperty</ToString><Props><S N="Value">{escape(str(v))}</S></Props>'
            f"</Obj>" for n, v in enumerate(ev["EventData"].values()))
        objs.append(
            f'<Obj RefId="{i}"><TNRef RefId="0" /><Props>'
            f'<I32 N="Id">{sysf["EventID"]}</I32>'
            f'<S N="ProviderName">Microsoft-Windows-WindowsUpdateClient</S>'
            f'<S N="LogName">System</S><I64 N="RecordId">{sysf["EventRecordID"]}</I64>'
            f'<S N="MachineName">{sysf["Computer"]}</S>'
            f'<DT N="TimeCreated">{stamp.isoformat()}</DT>'
            f'<Obj N="Properties" RefId="p{i}"><TNRef RefId="2" /><LST>{values}</LST></Obj>'
            f'<Nil N="ContainerLog" /></Props></Obj>')
    path = tmp_path / "wu.clixml.xml"
    path.write_text('<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/'
                    '2004/04">' + "".join(objs) + "</Objs>", encoding="utf-8")
    events, stats = _events(path)
    assert stats.records == len(objs) == 377 and not stats.warnings
    ids = Counter(e.event_id for e in events)
    assert (ids[19], ids[20], ids[43], ids[44]) == (116, 5, 119, 137)
    from_evtx, _ = _events(evtx_dir / "system.evtx")
    wu = [e for e in from_evtx if e.provider == "Microsoft-Windows-WindowsUpdateClient"]
    key = lambda e: (e.record_id, e.kb, e.title, e.update_guid, e.error_code, e.time)  # noqa: E731
    assert sorted(map(key, events)) == sorted(map(key, wu))


def test_json_export_shapes_stream(tmp_path: Path) -> None:
    """An array split across read blocks, JSON Lines, and a single object all read fully."""
    from hpforensics.evtx import exports

    rows = [{"Id": 19, "ProviderName": "Microsoft-Windows-WindowsUpdateClient",
             "MachineName": "PC1", "RecordId": i, "TimeCreated": "2025-02-12T10:00:00Z",
             "Properties": [{"Value": f"2025-02 Hotpatch (KB5052105) {'x' * 300}"}]}
            for i in range(3000)]
    for name, text in (("array.json", json.dumps(rows, indent=1)),
                       ("lines.jsonl", "\n".join(json.dumps(r) for r in rows)),
                       ("one.json", json.dumps(rows[0]))):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        stats = ReadStats(name)
        got = list(exports.read_json(str(path), stats))
        assert len(got) == (1 if name == "one.json" else 3000) and not stats.warnings
        assert got[-1].data["updateTitle"].startswith("2025-02 Hotpatch (KB5052105)")
    assert len(json.dumps(rows, indent=1)) > 1 << 20  # crosses exports._BLOCK at least once
