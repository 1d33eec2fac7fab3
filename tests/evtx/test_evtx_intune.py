"""summary.csv / summary-devices.csv and the report's Autopatch and memory sections: our
evidence in the terms of Intune's hotpatch quality update report, end to end from the CLI."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpforensics.errors import InputError
from hpforensics.timeline import intune as I
from hpforensics.timeline.compliance import MonthCompliance
from hpforensics.model import Finding, Verdict

FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"
INTUNE_RING = ["Quality update policy / ring", "Devices", "Up to date", "Hotpatched",
               "Not up to date", "In progress", "% with the latest quality update", "Not ready",
               "Paused"]
INTUNE_DEVICE = ["Device name", "Ring", "OS build", "Update status"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _by_device(out: Path) -> dict[str, dict[str, str]]:
    return {r["Device name"]: r for r in _rows(out / "summary-devices.csv")}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    proc = subprocess.run([sys.executable, "-m", "hpforensics", "timeline", str(FLEET), "-o",
                           str(out), "--no-hash"], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr  # HP-WS-007's broken chunk
    return out


def test_summary_in_intune_terms_on_the_sample_fleet(whole: Path) -> None:
    head = next(csv.reader(open(whole / "summary.csv", encoding="utf-8")))
    assert head[:9] == INTUNE_RING
    assert {"Days to compliance (median)", "Fell off the track", "Baseline missing",
            "Live in memory"} <= set(head)
    (ring,) = _rows(whole / "summary.csv")
    assert ring["Quality update policy / ring"] == "all devices" and ring["Devices"] == "7"
    assert (ring["Up to date"], ring["Hotpatched"], ring["Not up to date"]) == ("7", "7", "0")
    assert ring["% with the latest quality update"] == "100.0"
    assert ring["Latest quality update"] == "KB5089466"
    assert (ring["Fell off the track"], ring["Baseline missing"]) == ("2", "1")
    dev_head = next(csv.reader(open(whole / "summary-devices.csv", encoding="utf-8")))
    assert dev_head[:4] == INTUNE_DEVICE
    devices = _by_device(whole)
    # hotpatched: the hotpatch's build (calendar: KB5089466 -> 26100.8390), not the April
    # baseline's that the last boot reported
    assert {d["OS build"] for d in devices.values()} == {"26100.8390"}
    booted = {r["device"]: r["booted_build"] for r in _rows(whole / "devices.csv")}
    assert set(booted.values()) == {"26100.8246"}
    assert devices["HP-WS-005"]["Fell off the track"] == "2025-08;2025-09"
    assert devices["HP-WS-004"]["Fell off the track"] == "2025-09"
    assert devices["HP-WS-006"]["Baseline missing"] == "2025-11;2025-12"
    assert devices["HP-WS-001"]["Live in memory"] == ""  # no findings given


def test_statuses_as_of_a_cut_with_rings(cli, tmp_path: Path) -> None:
    """Logs read up to 2025-09-10 (the September hotpatch shipped 09-09) and 2025-11-14, rings
    from an Intune-style export."""
    rings = tmp_path / "rings.csv"
    rings.write_text("Device name,Deployment ring\nhp-ws-001,Ring1\nHP-WS-002,Ring1\n"
                     "HP-WS-003,Ring1\nHP-WS-004,Ring2\nHP-WS-005,Ring2\nHP-WS-006,Ring2\n",
                     encoding="utf-8")
    sept = tmp_path / "sept"
    proc = cli("timeline", FLEET, "-o", sept, "--no-hash", "--to", "2025-09-10",
               "--rings", rings)
    assert proc.returncode == 3, proc.stderr
    devices = _by_device(sept)
    status = {name: d["Update status"] for name, d in devices.items()}
    assert status == {"HP-WS-001": "In progress", "HP-WS-002": "In progress",
                      "HP-WS-003": "Up to date", "HP-WS-004": "In progress",
                      "HP-WS-005": "In progress", "HP-WS-006": "Up to date",
                      "HP-WS-007": "Up to date"}
    # on August's hotpatch (26100.4851) since the July baseline's boot (26100.4652)
    assert devices["HP-WS-001"]["OS build"] == "26100.4851"
    assert devices["HP-WS-003"]["OS build"] == "26100.6508"  # September's hotpatch
    assert devices["HP-WS-005"]["OS build"] == "26100.4946"  # August's standard update
    assert devices["HP-WS-001"]["Ring"] == "Ring1" and devices["HP-WS-007"]["Ring"] == "all devices"
    rows = {r["Quality update policy / ring"]: r for r in _rows(sept / "summary.csv")}
    assert set(rows) == {"Ring1", "Ring2", "all devices"}
    assert (rows["Ring1"]["Up to date"], rows["Ring1"]["In progress"]) == ("1", "2")
    assert rows["Ring1"]["% with the latest quality update"] == "33.3"
    assert rows["Ring2"]["Fell off the track"] == "1"  # HP-WS-005 in August (004: not yet)
    # logs that end before the September release (09-09 17:00 UTC) are judged on August's
    early = tmp_path / "early"
    cli("timeline", FLEET, "-o", early, "--no-hash", "--to", "2025-09-08")
    first = _by_device(early)["HP-WS-001"]
    assert (first["Update status"], first["Latest quality update"]) == ("Up to date", "KB5064010")
    nov = tmp_path / "nov"
    cli("timeline", FLEET, "-o", nov, "--to", "2025-11-14", "--rings", rings)
    six = _by_device(nov)["HP-WS-006"]
    assert six["Update status"] == "Not up to date" and "the month before: failed" in six["Reason"]
    assert six["OS build"] == "26100.6508"  # still on September's hotpatch: the baseline failed
    assert _rows(nov / "summary.csv")[1]["Not up to date"] == "1"  # Ring2
    custody = json.loads((nov / "custody.json").read_text())
    assert custody["options"]["rings"] == str(rings)
    assert any(i["path"].endswith("rings.csv") and i["sha256"] for i in custody["inputs"])


@dataclasses.dataclass
class _Device:
    device: str
    lifecycles: list
    months: list
    summary: dict


def _month(month: str, status: str, **kw) -> MonthCompliance:
    m = MonthCompliance("D1", "windows11-24h2", month, "hotpatch", "KB5065474", "26100.6508",
                        dt.date(2025, 9, 9), status=status,
                        deadline=dt.datetime(2025, 10, 14, 17, tzinfo=dt.timezone.utc))
    return dataclasses.replace(m, **kw)


def test_status_rules_on_their_own() -> None:
    last = {"last_event": dt.datetime(2025, 9, 20, tzinfo=dt.timezone.utc),
            "os_build": "26100.4652"}
    ok_aug = _month("2025-08", "compliant", installed_kb="KB5064010",
                    effective_at=dt.datetime(2025, 8, 13, tzinfo=dt.timezone.utc))
    cases = {
        "pending-reboot": (I.IN_PROGRESS, _month("2025-09", "pending-reboot",
                                                 installed_kb="KB5065426")),
        "not-applicable": (I.NOT_READY, _month("2025-09", "not-applicable",
                                               reason="no hotpatch programme")),
        "failed": (I.NOT_UP_TO_DATE, _month("2025-09", "failed", failures=2)),
        "off-track": (I.UP_TO_DATE, _month("2025-09", "off-track", installed_kb="KB5065426",
                                           installed_class="standard",
                                           effective_at=dt.datetime(2025, 9, 11, 3,
                                                                    tzinfo=dt.timezone.utc))),
    }
    for name, (want, month) in cases.items():
        row = I.device_status(_Device("D1", [], [ok_aug, month], last))
        assert row.update_status == want, name
    off = I.device_status(_Device("D1", [], [ok_aug, cases["off-track"][1]], last))
    assert not off.hotpatched and off.days_to_compliance == 2
    due = _month("2025-09", "not-due")
    assert I.device_status(_Device("D1", [], [ok_aug, due], last)).update_status == I.IN_PROGRESS
    missed = dataclasses.replace(ok_aug, status="missing", installed_kb="", effective_at=None)
    assert I.device_status(_Device("D1", [], [missed, due], last)).update_status == I.NOT_UP_TO_DATE
    until = dt.datetime(2025, 9, 30, tzinfo=dt.timezone.utc)
    paused = I.device_status(_Device("D1", [], [ok_aug, due], last), paused_until=until)
    assert paused.update_status == I.PAUSED and "2025-09-30" in paused.reason
    rows = [I.device_status(_Device(f"D{i}", [], [ok_aug, m], last), ring="R")
            for i, (_, m) in enumerate(cases.values())]
    (summary,) = I.ring_summaries(rows)
    assert (summary.devices, summary.up_to_date, summary.in_progress, summary.not_ready,
            summary.not_up_to_date) == (4, 1, 1, 1, 1)
    assert summary.pct_latest_quality_update == 33.3  # 1 of the 3 that are not Not ready


def test_rings_file_errors(cli, tmp_path: Path) -> None:
    bad = tmp_path / "rings.csv"
    bad.write_text("name,group\nHP-WS-001,A\n", encoding="utf-8")
    with pytest.raises(InputError, match="device column"):
        I.load_rings(bad)
    proc = cli("timeline", FLEET / "HP-WS-001", "-o", tmp_path / "o", "--rings", bad)
    assert proc.returncode == 2 and proc.stderr.startswith("hpforensics: error:")
    assert "rings.csv" in proc.stderr and "Traceback" not in proc.stderr


def _findings(path: Path, source: str, *kbs: str) -> Path:
    rows = []
    for i, kb in enumerate(kbs):
        f = Finding(source=source, pid=4, process="System", module="ntoskrnl.exe",
                    module_path="", module_base=0, address=0x1000 + i, rva=0x1000 + i, size=5,
                    verdict=Verdict.HOTPATCH, reason="redirect to patch image",
                    patch_image=f"hotpatch_{kb}.sys", sequence=9, kb=kb)
        rows.append({k: (v.value if isinstance(v, Verdict) else v)
                     for k, v in dataclasses.asdict(f).items() if not isinstance(v, bytes)})
    path.write_text(json.dumps({"findings": rows}), encoding="utf-8")
    return path


def test_memory_findings_in_the_report(cli, tmp_path: Path) -> None:
    live = _findings(tmp_path / "live.json", "live:HP-WS-001", "KB5089466")
    stale = _findings(tmp_path / "dump.json", "dump:/cases/ws4.raw", "KB5079420")
    out = tmp_path / "out"
    # a live scan names its host; a dump is given to its device by name
    proc = cli("timeline", FLEET, "-o", out, "--no-hash", "--findings", live,
               "--findings", f"HP-WS-004={stale}")
    assert proc.returncode == 3, proc.stderr
    devices = _by_device(out)
    assert devices["HP-WS-001"]["Live in memory"] == "yes (KB5089466)"
    assert devices["HP-WS-004"]["Live in memory"] == "NO (KB5089466 not live)"
    assert devices["HP-WS-002"]["Live in memory"] == ""
    (ring,) = _rows(out / "summary.csv")
    assert (ring["Live in memory"], ring["Not live in memory"]) == ("1", "1")
    memory = {(r["device"], r["kb"]): r for r in _rows(out / "memory.csv")}
    assert memory[("HP-WS-001", "KB5089466")]["verdict"] == "installed and live"
    assert memory[("HP-WS-004", "KB5089466")]["verdict"] == "installed, NOT live in memory"
    assert memory[("HP-WS-004", "KB5079420")]["expected_live"] == "false"  # March, before April
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Installed per the logs vs live in memory" in page and "id='memory-table'" in page
    assert page.count("installed and live") == 2 and "installed, NOT live in memory" in page
    custody = json.loads((out / "custody.json").read_text())
    assert str(live) in custody["options"]["findings"]
    # a dump's findings name no device: on a fleet the device must be given
    proc = cli("timeline", FLEET, "-o", tmp_path / "o2", "--no-hash", "--findings", stale)
    assert proc.returncode == 2 and "DEVICE=FILE" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("timeline", FLEET, "-o", tmp_path / "o3", "--no-hash",
               "--findings", f"HP-WS-999={stale}")
    assert proc.returncode == 2 and "HP-WS-999" in proc.stderr.upper()
    # one device: its findings need no name
    proc = cli("timeline", FLEET / "HP-WS-004", "-o", tmp_path / "one", "--no-hash",
               "--findings", stale)
    assert proc.returncode == 0, proc.stderr
    assert _by_device(tmp_path / "one")["HP-WS-004"]["Live in memory"] == "NO (KB5089466 not live)"


def _hive_builder():
    import importlib.util
    import sys as _sys

    samples = FLEET.parent
    _sys.path.insert(0, str(samples))
    spec = importlib.util.spec_from_file_location("build_hive", samples / "build_hive.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_paused_from_registry_evidence(cli, tmp_path: Path) -> None:
    """A quality-update pause in a `reg export` (UX\\Settings, as the Settings app writes it)
    and in the SOFTWARE hive of a triage collection: Paused while the last event falls in it."""
    import shutil

    device = tmp_path / "HP-WS-001"
    shutil.copytree(FLEET / "HP-WS-001", device)
    (device / "pause.reg").write_text(
        "Windows Registry Editor Version 5.00\r\n\r\n"
        "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\WindowsUpdate\\UX\\Settings]\r\n"
        '"PauseQualityUpdatesStartTime"="2026-05-12T08:00:00Z"\r\n'
        '"PauseQualityUpdatesEndTime"="2026-06-16T08:00:00Z"\r\n', encoding="utf-16")
    before, during = tmp_path / "before", tmp_path / "during"
    cli("timeline", device, "-o", before, "--no-hash", "--to", "2026-05-11")
    cli("timeline", device, "-o", during, "--no-hash")
    assert _by_device(before)["HP-WS-001"]["Update status"] == "Up to date"  # not paused yet
    row = _by_device(during)["HP-WS-001"]
    assert row["Update status"] == "Paused" and "2026-06-16" in row["Reason"]
    assert _rows(during / "summary.csv")[0]["Paused"] == "1"
    (dev,) = _rows(during / "devices.csv")
    assert (dev["quality_paused_from"], dev["quality_paused_until"]) == (
        "2026-05-12T08:00:00Z", "2026-06-16T08:00:00Z")
    # the same pause read from a SOFTWARE hive
    B = _hive_builder()
    utc = dt.timezone.utc
    (device / "pause.reg").unlink()
    config = device / "C" / "Windows" / "System32" / "config"
    config.mkdir(parents=True)
    hive = B.software(pause=(dt.datetime(2026, 5, 12, 8, tzinfo=utc),
                             dt.datetime(2026, 6, 16, 8, tzinfo=utc)))
    (config / "SOFTWARE").write_bytes(hive.data)
    hived = tmp_path / "hive"
    proc = cli("timeline", device, "-o", hived, "--no-hash")
    assert proc.returncode == 0, proc.stderr
    assert _by_device(hived)["HP-WS-001"]["Update status"] == "Paused"
    # and from the Velociraptor artifact's Enrolment rows (contrib/velociraptor)
    shutil.rmtree(config)
    results = device / "results"
    results.mkdir()
    key = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\WindowsUpdate\UpdatePolicy\PolicyState"
    rows = [{"Path": f"{key}\\{name}", "Name": name, "IsDir": False, "Type": "REG_SZ",
             "Value": value, "Mtime": "2026-05-12T08:00:01Z"}
            for name, value in (("PauseQualityUpdatesStartTime", "2026-05-12T08:00:00Z"),
                                ("PauseQualityUpdatesEndTime", "2026-06-16T08:00:00Z"))]
    (results / "Windows.Hotpatch.Collect%2FEnrolment.json").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    velo = tmp_path / "velo"
    proc = cli("timeline", device, "-o", velo, "--no-hash")
    assert proc.returncode == 0, proc.stderr
    assert _by_device(velo)["HP-WS-001"]["Update status"] == "Paused"
