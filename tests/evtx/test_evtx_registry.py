"""Hotpatch enrolment evidence from the registry (hpforensics/evtx/registry.py): Velociraptor
result rows of Windows.Hotpatch.Collect and `reg export` files become events, and a device's
`hotpatch_enrolment` can come from the registry alone."""
from __future__ import annotations

import csv
import importlib.util
import json
import zipfile
from pathlib import Path

from hpforensics.evtx.ingest import discover
from hpforensics.timeline.normalise import normalise
from hpforensics.evtx.records import ReadStats
from hpforensics.evtx.formats.registry import read_registry
from hpforensics.evtx.registry import is_results_file

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
_spec = importlib.util.spec_from_file_location("build_velociraptor",
                                               SAMPLES / "build_velociraptor.py")
VR = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(VR)  # type: ignore[union-attr]
NO_MEDIC = VR.LOGS[:3]
assert not any("WaaSMedic" in log for log in NO_MEDIC)

UPDATE = VR.UPDATE
SERVER_ROWS = [  # a Windows Server 2025 enrolled with the Hotpatch Enrollment Package
    {"Path": UPDATE + r"\TargetingInfo\DynamicInstalled\Hotpatch.amd64", "Name": "Hotpatch.amd64",
     "IsDir": True, "Type": None, "Value": None, "Mtime": "2025-03-02T10:00:00.1234567Z"},
    {"Path": UPDATE + r"\TargetingInfo\DynamicInstalled\Hotpatch.amd64\Name", "Name": "Name",
     "IsDir": False, "Type": "SZ", "Value": "Hotpatch Enrollment Package",
     "Mtime": "2025-03-02T10:00:00Z"},
    {"Path": UPDATE + r"\AllowRebootlessUpdates", "Name": "AllowRebootlessUpdates",
     "IsDir": False, "Type": "DWORD", "Value": 0, "Mtime": "2025-04-01T08:00:00Z"},
    {"Path": VR.MEMORY + r"\HotPatchTableSize", "Name": "HotPatchTableSize", "IsDir": False,
     "Type": "DWORD", "Value": 0, "Mtime": "2025-03-02T10:00:00Z"},
]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _events(path: Path, device: str = "") -> list:
    stats = ReadStats(str(path))
    events = [normalise(r, str(path), device, None) for r in read_registry(str(path), stats)]
    return events, stats


def test_enrolment_rows_become_the_right_events(tmp_path: Path) -> None:
    path = tmp_path / "Windows.Hotpatch.Collect%2FEnrolment.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in SERVER_ROWS))
    events, stats = _events(path, "SRV-01")
    assert stats.records == 4 and not stats.warnings
    key, name, allow, size = events
    assert key.category == "hotpatch-enrolment" and key.device == "SRV-01"
    assert key.detail == (r"key HKLM\SOFTWARE\Microsoft\PolicyManager\current\device\Update"
                          r"\TargetingInfo\DynamicInstalled\Hotpatch.amd64")
    assert key.time.isoformat() == "2025-03-02T10:00:00.123456+00:00"
    assert (key.provider, key.channel, key.event_id, key.record_id) == (
        "Registry", "Registry", 0, 1)
    assert name is None and size is None  # a value of the key / a zero table size say nothing
    assert allow.category == "hotpatch-not-enrolled"
    assert allow.detail.endswith(r"\Update\AllowRebootlessUpdates = 0 (DWORD)")


def test_hotpatch_keys_rows(tmp_path: Path) -> None:
    """Source HotpatchKeys (read_reg_key): the key and each value column."""
    row = {"Path": UPDATE + r"\TargetingInfo\DynamicInstalled\Hotpatch.arm64",
           "Mtime": "2025-03-02T10:00:00Z", "Key": {"OSPath": "x", "Size": 0},
           "Name": "Hotpatch Enrollment Package", "Version": 2}
    path = tmp_path / "HotpatchKeys.json"
    path.write_text(json.dumps(row) + "\n")
    stats = ReadStats(str(path))
    records = list(read_registry(str(path), stats))
    assert [(r.data["name"], r.data["value"]) for r in records] == [
        ("", ""), ("Name", "Hotpatch Enrollment Package"), ("Version", "2")]
    assert [e and e.category for e in (normalise(r, "s", "SRV", None) for r in records)] == [
        "hotpatch-enrolment", None, None]


def test_results_files_are_found_in_every_layout(tmp_path: Path) -> None:
    assert is_results_file("results/Windows.Hotpatch.Collect%2FEnrolment.json")
    assert is_results_file(r"C:\case\HOST\Windows.Hotpatch.Collect\HotpatchKeys.json")
    assert not is_results_file("results/Windows.Hotpatch.Collect%2FEventLogs.json")
    assert not is_results_file("Enrolment.json") and not is_results_file("uploads.json")
    # an extracted collection, the older <Artifact>/<Source>.json form
    old = tmp_path / "Collection-SRV-01-2026-05-20T09_00_00Z" / "Windows.Hotpatch.Collect"
    old.mkdir(parents=True)
    (old / "Enrolment.json").write_text(json.dumps(SERVER_ROWS[0]) + "\n")
    (old / "EventLogs.json").write_text("")
    items = discover([tmp_path])
    assert [(Path(i.path).name, i.kind, i.device_hint) for i in items] == [
        ("Enrolment.json", "registry", "SRV-01"), ("EventLogs.json", "json", "")]


def test_committed_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    built = VR.build(tmp_path)
    committed = SAMPLES / "velociraptor" / built.name
    assert committed.read_bytes() == built.read_bytes()
    with zipfile.ZipFile(committed) as zf:
        assert "results/Windows.Hotpatch.Collect%2FEnrolment.json" in zf.namelist()


def test_timeline_on_the_collection_sample(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli("timeline", SAMPLES / "velociraptor", "-o", out, "--no-hash", "--no-html")
    assert proc.returncode == 0, proc.stderr
    (device,) = _rows(out / "devices.csv")
    assert device["device"] == "HP-WS-001" and device["hotpatch_enrolment"] == "true"
    registry = [r for r in _rows(out / "timeline.csv") if r["provider"] == "Registry"]
    assert [(r["datetime"], r["category"]) for r in registry] == [
        ("2025-02-01T07:18:00.000000Z", "hotpatch-enrolment"),
        ("2025-02-01T07:20:00.000000Z", "hotpatch-enrolment")]
    assert registry[0]["message"].startswith("HP-WS-001: Hotpatch Enrolment Evidence")
    assert registry[0]["message"].endswith(r"\Update\AllowRebootlessUpdates = 1 (DWORD)")
    assert registry[0]["source"].endswith("!results/Windows.Hotpatch.Collect%2FEnrolment.json")


def test_enrolment_from_the_registry_alone(cli, tmp_path: Path) -> None:
    """Without the WaaSMedic log, the registry rows alone set hotpatch_enrolment; without
    them too it stays false; AllowRebootlessUpdates = 0 is a not-enrolled event."""
    cases = {"rows": VR.ENROLLED_ROWS, "none": (),
             "off": [dict(VR.ENROLLED_ROWS[0], Value=0)]}
    found = {}
    for name, rows in cases.items():
        VR.build(tmp_path / name, logs=NO_MEDIC, rows=rows)
        proc = cli("timeline", tmp_path / name, "-o", tmp_path / f"{name}-out", "--no-hash",
                   "--no-html")
        assert proc.returncode == 0, proc.stderr
        (device,) = _rows(tmp_path / f"{name}-out" / "devices.csv")
        cats = [r["category"] for r in _rows(tmp_path / f"{name}-out" / "events.csv")
                if r["channel"] == "Registry"]
        found[name] = (device["device"], device["hotpatch_enrolment"], cats)
    assert found == {
        "rows": ("HP-WS-001", "true", ["hotpatch-enrolment"] * 2),
        "none": ("HP-WS-001", "false", []),
        "off": ("HP-WS-001", "false", ["hotpatch-not-enrolled"])}
    off = [r for r in _rows(tmp_path / "off-out" / "timeline.csv") if r["provider"] == "Registry"]
    assert off[0]["timestamp_desc"] == "Hotpatch Not Enrolled"


REG_EXPORT = "\r\n".join([
    "Windows Registry Editor Version 5.00",
    "",
    r"[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\PolicyManager\current\device\Update]",
    '"AllowRebootlessUpdates"=dword:00000001',
    '"ConfigureDeadlineForQualityUpdates"="7"',
    "",
    r"[HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\PolicyManager\current\device\Update\TargetingInfo"
    r"\DynamicInstalled\Hotpatch.amd64]",
    '"Name"="Hotpatch Enrollment Package"',
    '"Owners"=hex(7):48,00,6f,00,74,00,00,00,\\',
    "  00,00",
    "",
    r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management]",
    '"HotPatchTableSize"=hex(b):00,10,00,00,00,00,00,00',
    "",
])


def _reg(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    path = folder / "hotpatch.reg"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))  # what `reg export` writes
    return path


def test_reg_export(tmp_path: Path) -> None:
    path = _reg(tmp_path / "SRV-02" / "registry", REG_EXPORT)
    (item,) = discover([tmp_path])
    assert (item.kind, item.device_hint) == ("registry", "SRV-02")
    events, stats = _events(path, item.device_hint)
    assert stats.records == 8 and not stats.warnings  # 3 keys, 5 values
    hits = [(e.category, e.record_id, e.detail) for e in events if e is not None]
    assert hits == [
        ("hotpatch-enrolment", 4, r"HKLM\SOFTWARE\Microsoft\PolicyManager\current\device\Update"
                                  r"\AllowRebootlessUpdates = 1 (REG_DWORD)"),
        ("hotpatch-enrolment", 7, r"key HKLM\SOFTWARE\Microsoft\PolicyManager\current\device"
                                  r"\Update\TargetingInfo\DynamicInstalled\Hotpatch.amd64"),
        ("hotpatch-enrolment", 13, r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager"
                                   r"\Memory Management\HotPatchTableSize = 4096 (REG_QWORD)")]
    assert all(e.time is None and e.device == "SRV-02" for e in events if e is not None)
    owners = next(r for r in read_registry(str(path), ReadStats("x")) if r.data["name"] == "Owners")
    assert owners.data["value"] == "Hot" and owners.record_id == 9


def test_malformed_rows_warn_once_and_keep_the_rest(cli, tmp_path: Path) -> None:
    good = [json.dumps(r) for r in VR.ENROLLED_ROWS]
    lines = [good[0], '{"Path": "HKLM", "Name": ', good[1]]
    member = VR.results_member("Enrolment")
    VR.build(tmp_path / "vr", logs=NO_MEDIC, rows=("\n".join(lines) + "\n").encode())
    reg = REG_EXPORT.replace('"AllowRebootlessUpdates"=dword:00000001',
                             '"AllowRebootlessUpdates"=dword:1x')
    _reg(tmp_path / "SRV-02", reg.replace("Memory Management]", "Memory Management"))
    out = tmp_path / "out"
    proc = cli("timeline", tmp_path, "-o", out, "--no-hash", "--no-html")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [r for r in _rows(out / "inputs.csv") if r["warnings"]]
    assert {(Path(r["source"]).relative_to(tmp_path).as_posix(), r["warnings"].split(": ", 1)[1])
            for r in warnings} == {
        ("vr/Collection-HP-WS-001-2026-05-20T09_00_00Z.zip!" + member,
         "line 2: not a JSON row (Expecting value: line 1 column 25 (char 24)); "
         "the other rows were kept"),
        ("SRV-02/hotpatch.reg",
         "line 4: bad dword '1x' (1 more bad lines); the other rows were kept")}
    assert member in proc.stderr and "hotpatch.reg: line 4" in proc.stderr
    registry = [(r["device"], r["detail"].rsplit("\\", 1)[1]) for r in _rows(out / "events.csv")
                if r["channel"] == "Registry"]
    assert sorted(registry) == [("HP-WS-001", "AllowRebootlessUpdates = 1 (DWORD)"),
                                ("HP-WS-001", "HotPatchTableSize = 4096 (DWORD)"),
                                ("SRV-02", "Hotpatch.amd64")]


def test_reg_file_without_its_header_line(tmp_path: Path) -> None:
    """A `.reg` name is enough to be read as one; a missing editor line is a warning, not a
    reason to drop the values (REGEDIT4-era ANSI text, no BOM)."""
    path = tmp_path / "x.reg"
    path.write_text("\n".join(REG_EXPORT.split("\r\n")[1:]), encoding="latin-1")
    events, stats = _events(path)
    assert stats.warnings == [f"{path}: line 1: not a registry export (no 'Windows Registry "
                              f"Editor' line); the other rows were kept"]
    assert [e.record_id for e in events if e is not None] == [3, 6, 12]
