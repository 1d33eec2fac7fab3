"""contrib/velociraptor/Windows.Hotpatch.Collect.yaml: a well-formed CLIENT artifact that
collects what the timeline reads, and a collection laid out as Velociraptor writes it
(`uploads/auto/C%3A/Windows/System32/winevt/Logs/...` in one zip per client) is ingested the
same as the plain per-device folders, single-process and on the cluster."""
from __future__ import annotations

import csv
import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import yaml

from hpforensics.timeline.pipeline import TimelineOptions

from hpforensics.runs.timeline import run_timeline
from hpforensics.fleet.cluster import ClusterSpec
from hpforensics.fleet.timeline import partitions, run_fleet_timeline

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "contrib" / "velociraptor" / "Windows.Hotpatch.Collect.yaml"
SAMPLE_FLEET = REPO / "samples" / "evtx"
# the collection zips are built by the sample builder (one copy of Velociraptor's layout)
_spec = importlib.util.spec_from_file_location("build_velociraptor",
                                               REPO / "samples" / "build_velociraptor.py")
VR = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(VR)  # type: ignore[union-attr]
LOGS = ["System.evtx", "Setup.evtx", "Microsoft-Windows-WindowsUpdateClient%4Operational.evtx",
        "Microsoft-Windows-WaaSMedic%4Operational.evtx"]
# VQL plugins and functions the artifact may call: all are Velociraptor built-ins.
VELOCIRAPTOR_VQL = {"info", "glob", "upload", "split", "if", "read_reg_key", "chain", "stat",
                    "foreach", "items", "to_dict", "format", "timestamp", "hash", "log"}
REGISTRY = [r"PolicyManager\current\device\Update\AllowRebootlessUpdates",
            r"Update\TargetingInfo\DynamicInstalled\Hotpatch.*",
            r"Session Manager\Memory Management\HotPatchTableSize",
            r"Session Manager\Memory Management\HotPatchRestrictions",
            r"PolicyManager\current\device\System\DisableCHPE",
            r"Session Manager\Environment\PROCESSOR_ARCHITECTURE"]


@pytest.fixture(scope="module")
def artifact() -> dict:
    return yaml.safe_load(ARTIFACT.read_text(encoding="utf-8"))


def _vql_calls(query: str) -> set[str]:
    code = re.sub(r"--[^\n]*|'[^']*'|\"[^\"]*\"", "", query)  # comments and strings out
    return set(re.findall(r"\b([A-Za-z_][\w.]*)\s*\(", code)) - {"SELECT", "FROM"}


def test_artifact_has_the_velociraptor_shape(artifact):
    assert artifact["name"] == "Windows.Hotpatch.Collect"
    assert artifact["type"] == "CLIENT"
    assert len(artifact["description"]) > 200
    names = [p["name"] for p in artifact["parameters"]]
    assert len(names) == len(set(names)) and all("default" in p for p in artifact["parameters"])
    assert {p.get("type", "string") for p in artifact["parameters"]} <= {"string", "bool", "int",
                                                                        "csv", "regex"}
    for source in artifact["sources"]:
        assert set(source) == {"name", "precondition", "query"}
        assert source["precondition"].strip() == "SELECT OS From info() where OS = 'windows'"
        assert source["query"].lstrip().startswith(("LET", "SELECT", "--"))
        calls = _vql_calls(source["query"])
        assert calls and calls <= VELOCIRAPTOR_VQL, calls - VELOCIRAPTOR_VQL
        # every parameter a query names exists
        for word in set(re.findall(r"\b([A-Z][A-Za-z]+(?:Key|Globs|Logs))\b", source["query"])):
            assert word in names, word
    queries = "\n".join(s["query"] for s in artifact["sources"])
    assert "upload(file=OSPath" in queries and "accessor='registry'" in queries
    assert "read_reg_key(" in queries


def test_artifact_gathers_what_the_ingester_needs(artifact):
    params = {p["name"]: p["default"] for p in artifact["parameters"]}
    globs = [g.strip() for g in params["EventLogGlobs"].split(",")]
    assert [g.rsplit("\\", 1)[1] for g in globs] == LOGS
    assert all(g.startswith("C:\\Windows\\System32\\winevt\\Logs\\") for g in globs)
    # the sample fleet (what the ingester is tested on) has exactly these logs per device
    device = SAMPLE_FLEET / "HP-WS-001" / "C" / "Windows" / "System32" / "winevt" / "Logs"
    assert sorted(p.name for p in device.iterdir()) == sorted(LOGS)
    text = ARTIFACT.read_text()
    keys = params["UpdatePolicyKey"] + "\n" + params["MemoryManagementKey"] + "\n" + text.replace(
        "/", "\\")
    for value in REGISTRY:
        tail = value.split("\\")[-1]
        assert tail in keys, value
    assert params["UpdatePolicyKey"].endswith(r"PolicyManager\current\device\Update")
    assert params["MemoryManagementKey"].endswith(r"Session Manager\Memory Management")
    for key in ("UX/Settings/", "UpdatePolicy/PolicyState/"):  # a quality-update pause
        assert f"WindowsUpdateKey + '/{key}PauseQualityUpdates*Time'" in text, key
    assert params["WindowsUpdateKey"].endswith(r"SOFTWARE\Microsoft\WindowsUpdate")


# What each collection's Enrolment source returns (two registry events per device).
ENROLMENT_ROWS = [
    {"Path": r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\PolicyManager\current\device\Update",
     "Name": "AllowRebootlessUpdates", "IsDir": False, "Type": "REG_DWORD", "Value": 1,
     "Mtime": "2025-02-01T07:18:00Z"},
    {"Path": r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Session Manager"
             r"\Memory Management", "Name": "HotPatchTableSize", "IsDir": False,
     "Type": "REG_DWORD", "Value": 4096, "Mtime": "2025-02-01T07:18:00Z"}]


@pytest.fixture(scope="module")
def collections(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("velociraptor")
    for name in ("HP-WS-001", "HP-WS-004", "HP-WS-006"):
        VR.build(out, SAMPLE_FLEET / name, logs=LOGS, rows=ENROLMENT_ROWS)
    return out


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_collection_zips_are_ingested_like_the_folders(collections, fleet_client, tmp_path):
    assert [Path(p).name[:20] for p in partitions([collections])] == [
        "Collection-HP-WS-001", "Collection-HP-WS-004", "Collection-HP-WS-006"]
    folders = tmp_path / "folders"
    for name in ("HP-WS-001", "HP-WS-004", "HP-WS-006"):
        shutil.copytree(SAMPLE_FLEET / name, folders / name)
    plain = tmp_path / "plain"
    run_timeline([folders], plain, TimelineOptions(), html=False)
    single, fleet = tmp_path / "single", tmp_path / "fleet"
    run_timeline([collections], single, TimelineOptions(), html=False)
    res = run_fleet_timeline([collections], fleet, TimelineOptions(), ClusterSpec(workers=2),
                             client=fleet_client, show_progress=False)
    assert (res.partitions, res.devices, res.failures) == (3, 3, [])
    # the device name comes from the records and, for the inputs, from the collection name
    inputs = [r for r in _rows(single / "inputs.csv") if r["source"].endswith(".evtx")]
    assert len(inputs) == 12
    assert {r["device_hint"] for r in inputs} == {"HP-WS-001", "HP-WS-004", "HP-WS-006"}
    assert all("!uploads/auto/C%3A/Windows/System32/winevt/Logs/" in r["source"] for r in inputs)
    # every verdict and lifecycle equals the plain folders' ones; each collection's two
    # Enrolment rows add two registry events (hpforensics/evtx/registry.py)
    for table in ("compliance", "updates", "devices"):
        expected = _rows(plain / f"{table}.csv")
        for row in expected if table == "devices" else []:
            row["events"] = str(int(row["events"]) + 2)
        assert _rows(single / f"{table}.csv") == expected, table
        assert sorted(map(str, _rows(fleet / f"{table}.csv"))) == sorted(
            map(str, _rows(single / f"{table}.csv")))
    registry = [r for r in _rows(single / "events.csv") if r["channel"] == "Registry"]
    assert [r["category"] for r in registry] == ["hotpatch-enrolment"] * 6
    events = [r for r in _rows(single / "events.csv") if r["channel"] != "Registry"]
    assert len(events) == len(_rows(plain / "events.csv")) > 1000
    assert {(r["device"], r["record_id"], r["channel"]) for r in events} == {
        (r["device"], r["record_id"], r["channel"]) for r in _rows(plain / "events.csv")}
    # Velociraptor's bookkeeping JSON (results, log, uploads) yields no events and no warning
    assert not res.warnings and not [r for r in _rows(single / "inputs.csv") if r["warnings"]]
