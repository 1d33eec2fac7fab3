"""Compliance on the generated fleet against its plan, and the rules on their own."""
from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import pytest

from hpforensics.timeline.classify import Classifier
from hpforensics.timeline.lifecycle import boot_events, build_lifecycles
from hpforensics.timeline.pipeline import TimelineOptions
from hpforensics.runs.timeline import run_timeline

FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("fleet")
    return run_timeline([FLEET], out, TimelineOptions(hash_inputs=False)), out


def test_fleet_matches_plan(fleet_run) -> None:
    result, _ = fleet_run
    plan = json.loads((FLEET / "fleet-plan.json").read_text())
    rows = {(m.device, m.month): m for d in result.devices for m in d.months}
    checked = 0
    for dev in plan["devices"]:
        for want in dev["months"]:
            got = rows[(dev["device"], want["month"])]
            assert got.expected_kb == want["expected_kb"], (dev["device"], want["month"])
            assert got.installed_kb == (want["installed_kb"] or ""), (dev["device"], want["month"])
            assert got.compliant is want["compliant"], (dev["device"], want["month"], got.reason)
            assert got.security_current is want["security_current"], (dev["device"], want["month"])
            assert got.status == want["status"], (dev["device"], want["month"], got.reason)
            assert _iso(got.installed_at) == want["installed_at"], (dev["device"], want["month"])
            assert _iso(got.effective_at) == want["effective_at"], (dev["device"], want["month"])
            if want["installed_kb"]:
                assert (got.how.startswith("hotpatch")) is (not want["reboot"])
            checked += 1
    assert checked == 112


def _iso(stamp):
    return stamp.isoformat().replace("+00:00", "Z") if stamp else None


def test_fleet_scenarios_are_named(fleet_run) -> None:
    result, _ = fleet_run
    by = {(m.device, m.month): m for d in result.devices for m in d.months}
    assert by[("HP-WS-005", "2025-08")].status == "off-track"
    assert by[("HP-WS-005", "2025-09")].off_track
    assert by[("HP-WS-005", "2025-10")].status == "compliant"  # the baseline puts it back on track
    fallback = by[("HP-WS-004", "2025-09")]
    assert fallback.failures >= 1 and fallback.status == "off-track"
    assert by[("HP-WS-006", "2025-10")].status == "failed"
    assert by[("HP-WS-006", "2025-11")].status == "baseline-missing"
    assert by[("HP-WS-003", "2026-03")].also_installed == "KB5084597"
    summary = {d.device: d.summary for d in result.devices}
    good = summary["HP-WS-001"]
    assert good["status"] == "compliant" and good["hotpatch_enrolment"]
    # the corrupt chunk is reported with file and offset, and the device still judged
    assert any("HP-WS-007" in w and "at offset 0x11000" in w for w in result.warnings)


def test_lifecycle_reboot_and_hotpatch(fleet_run) -> None:
    result, _ = fleet_run
    dev = next(d for d in result.devices if d.device == "HP-WS-001")
    lcs = {lc.kb: lc for lc in dev.lifecycles}
    base = lcs["KB5055523"]
    assert base.update_class == "baseline" and base.effective_by.startswith("boot at")
    assert base.downloaded_at < base.started_at <= base.installed_at <= base.effective_at
    assert "restart" in base.restart  # the USER32 1074 that preceded the completing boot
    hot = lcs["KB5052105"]
    assert hot.update_class == "hotpatch" and hot.effective_at == hot.installed_at
    assert hot.attempts == 1  # logged to System and to the Operational channel: counted once


@pytest.mark.parametrize("untimed", [0, 3])
def test_lifecycles_do_not_depend_on_event_order(fleet_run, untimed: int) -> None:
    """build_lifecycles takes a device's events in any order (by time, then record ID; an
    event without a time first): shuffled, the same lifecycles, with or without untimed
    events."""
    result, _ = fleet_run
    dev = max(result.devices, key=lambda d: len(d.lifecycles))
    events = [dataclasses.replace(e) for e in dev.events]
    updates = [e for e in events if e.kb and e.category.startswith(("update-", "servicing-"))]
    for e in updates[:untimed]:
        e.time = None
    boots = boot_events(events)
    want = [dataclasses.asdict(lc) for lc in build_lifecycles(events, boots)]
    assert len(want) >= 5
    if untimed:
        assert any(lc["first_seen"] is None for lc in want)
    for seed in range(3):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        assert [dataclasses.asdict(lc) for lc in build_lifecycles(shuffled, boots)] == want


def test_classifier_against_calendar() -> None:
    c = Classifier()
    assert c.classify("KB5052105", "", "", None).update_class == "hotpatch"
    assert c.classify("", "", "26100.3775", None).update_class == "baseline"
    assert c.classify("KB5084597", "", "", None).update_class == "out-of-band-hotpatch"
    cu = c.classify("KB5063878", "2025-08 Cumulative Update for Windows 11 Version 24H2 for "
                    "x64-based Systems (KB5063878) (26100.4946)", "", None)
    assert (cu.update_class, cu.release_month) == ("standard", "2025-08")
    assert c.classify("KB890830", "Windows Malicious Software Removal Tool x64 - v5.131 "
                      "(KB890830)", "", None).update_class == "other"
    assert c.classify("KB5050577", "2025-01 Cumulative Update for .NET Framework 3.5 and 4.8.1 "
                      "for Windows 11, version 24H2 (KB5050577)", "", None).update_class == "other"


def test_real_windows10_log_is_not_judged_for_hotpatching(shared_data: Path,
                                                           tmp_path: Path) -> None:
    result = run_timeline([shared_data / "evtx" / "system.evtx"], tmp_path,
                          TimelineOptions(hash_inputs=False), html=False)
    dev = next(d for d in result.devices if d.device == "DESKTOP-2KGM189")
    assert dev.product == "windows-build-15063"  # booted 10.0.15063 only: no hotpatching
    assert {m.status for m in dev.months} == {"not-applicable"}
    assert all(m.compliant is None for m in dev.months)
    cu = next(lc for lc in dev.lifecycles if lc.kb == "KB4025342")
    assert (cu.update_class, cu.status, cu.failures) == ("standard", "failed", 4)
    assert cu.error_codes == "0x80248007"
    july = next(m for m in dev.months if m.month == "2017-07")
    assert july.failures == 4 and july.retries == 3


def test_timeline_rows_that_tie_come_out_in_input_order(tmp_path: Path) -> None:
    """Rows that agree on time, device and record ID (a log collected twice) come out in the
    order of their inputs, with one process or two: the same timeline, byte for byte."""
    import csv

    logs = tmp_path / "logs"  # the fleet, and two devices collected a second time
    shutil.copytree(FLEET, logs / "first")
    for device in ("HP-WS-001", "HP-WS-004"):
        shutil.copytree(FLEET / device, logs / "again" / device)
    run_timeline([logs], tmp_path / "one", TimelineOptions(hash_inputs=False), html=False)
    run_timeline([logs], tmp_path / "two", TimelineOptions(hash_inputs=False, jobs=2),
                 html=False)
    one = (tmp_path / "one" / "timeline.csv").read_bytes()
    assert one == (tmp_path / "two" / "timeline.csv").read_bytes()
    with open(tmp_path / "one" / "timeline.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(tmp_path / "one" / "inputs.csv", newline="", encoding="utf-8") as fh:
        order = {row["source"]: i for i, row in enumerate(csv.DictReader(fh))}
    assert len(rows) > 1000
    assert [r["datetime"] for r in rows] == sorted(r["datetime"] for r in rows)
    ties: dict[tuple, list[int]] = {}
    for r in rows:
        if r["source"] != "derived":
            ties.setdefault((r["datetime"], r["device"], r["record_id"]), []).append(
                order[r["source"]])
    tied = [got for got in ties.values() if len(got) > 1]
    assert len(tied) > 100  # the copies tie with the first collection
    assert all(got == sorted(got) for got in tied)
