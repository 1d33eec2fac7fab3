"""Our evidence in the terms of Intune's Windows Autopatch hotpatch quality update report.

Auditors already read that report (docs/timeline.md, "The report auditors know" has the
sources): per quality update policy / ring, Up to date, Hotpatched, Not up to date, In progress,
% with the latest quality update, Not ready, Paused; per device, device name, OS build, update
status, ring. Intune fills it from the devices' diagnostic data; here each device's status is
computed from its own logs as of its last event, with our columns beside: days to compliance,
the months it fell off the hotpatch track or had its baseline missing, and whether the hotpatch
expected live is live in memory (when memory findings are given).

Microsoft lists In progress and Paused as sub-statuses of Up to date; here every device has
exactly one update status, so Up to date + In progress + Paused + Not up to date + Not ready is
the ring's device count, and Hotpatched counts the Up to date devices whose latest update is a
hotpatch.
"""
from __future__ import annotations

import csv
import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

from hpforensics.errors import InputError
from hpforensics.timeline.compliance import RELEASE_HOUR_UTC, MonthCompliance
from hpforensics.timeline.correlate import KbCorrelation
from hpforensics.timeline.lifecycle import HOTPATCH_CLASSES, UpdateLifecycle

UP_TO_DATE, IN_PROGRESS, PAUSED = "Up to date", "In progress", "Paused"
NOT_UP_TO_DATE, NOT_READY = "Not up to date", "Not ready"
UPDATE_STATUSES = (UP_TO_DATE, IN_PROGRESS, PAUSED, NOT_UP_TO_DATE, NOT_READY)
ALL_DEVICES = "all devices"  # the ring of a device no --rings file names

# month statuses (compliance.py) in which the month's update is on the device and effective
_HAS_UPDATE = frozenset({"compliant", "off-track", "late"})
_MISSED = frozenset({"failed", "missing", "baseline-missing"})


class DeviceEvidence(Protocol):
    """What a device's status is computed from (pipeline.DeviceResult; the fleet's copies
    without events are enough)."""

    device: str
    lifecycles: list[UpdateLifecycle]
    months: list[MonthCompliance]
    summary: dict[str, Any]


@dataclass
class DeviceUpdateStatus:
    """One device as the report's device list shows it, and our columns beside."""

    device_name: str
    ring: str
    os_build: str  # the hotpatch's build where the device is hotpatched, else the booted build
    update_status: str
    hotpatched: bool
    latest_quality_update: str  # the calendar's KB for the month of the device's last event
    installed_update: str  # the update of that month on the device, if any
    as_of: dt.datetime | None  # the device's last event
    reason: str
    days_to_compliance: int | None  # release -> the latest update effective on the device
    fell_off_track: str  # months off the hotpatch track, ';'-separated
    baseline_missing: str  # months whose quarter's baseline was missing
    live_in_memory: str  # the hotpatch expected live, per memory findings ('' without findings)


@dataclass
class RingSummary:
    """One row of the report's policy view, and our columns beside."""

    ring: str
    devices: int
    up_to_date: int
    hotpatched: int
    not_up_to_date: int
    in_progress: int
    pct_latest_quality_update: float | None  # Up to date / devices that are not Not ready
    not_ready: int
    paused: int
    latest_quality_update: str
    median_days_to_compliance: float | None
    fell_off_track: int  # devices that were off the track in some month
    baseline_missing: int
    live_in_memory: int  # devices whose expected hotpatch is live (of those with findings)
    not_live_in_memory: int


# Column headings of summary.csv and summary-devices.csv: Intune's words first, then ours.
SUMMARY_HEADINGS = {
    "ring": "Quality update policy / ring", "devices": "Devices", "up_to_date": "Up to date",
    "hotpatched": "Hotpatched", "not_up_to_date": "Not up to date",
    "in_progress": "In progress",
    "pct_latest_quality_update": "% with the latest quality update", "not_ready": "Not ready",
    "paused": "Paused", "latest_quality_update": "Latest quality update",
    "median_days_to_compliance": "Days to compliance (median)",
    "fell_off_track": "Fell off the track", "baseline_missing": "Baseline missing",
    "live_in_memory": "Live in memory", "not_live_in_memory": "Not live in memory",
}
INTUNE_RING_COLUMNS = ["ring", "devices", "up_to_date", "hotpatched", "not_up_to_date",
                       "in_progress", "pct_latest_quality_update", "not_ready", "paused",
                       "latest_quality_update"]  # the report's own columns (and the KB)
DEVICE_HEADINGS = {
    "device_name": "Device name", "ring": "Ring", "os_build": "OS build",
    "update_status": "Update status", "hotpatched": "Hotpatched",
    "latest_quality_update": "Latest quality update", "installed_update": "Installed update",
    "as_of": "As of", "reason": "Reason", "days_to_compliance": "Days to compliance",
    "fell_off_track": "Fell off the track", "baseline_missing": "Baseline missing",
    "live_in_memory": "Live in memory",
}


def device_status(d: DeviceEvidence, ring: str = ALL_DEVICES,
                  memory: list[KbCorrelation] | None = None,
                  paused_until: dt.datetime | None = None,
                  paused_from: dt.datetime | None = None) -> DeviceUpdateStatus:
    """The device's update status as of its last event. `memory`: its rows of
    correlate.correlate (None: no findings for it); `paused_from` / `paused_until`: a quality
    update pause the evidence shows (Paused when the last event falls inside it)."""
    as_of = d.summary.get("last_event")
    off = ";".join(m.month for m in d.months if m.off_track)
    base = ";".join(m.month for m in d.months if m.baseline_missing)
    # the running build (rows.running_build): the hotpatch's where the device is hotpatched
    row = DeviceUpdateStatus(d.device, ring, d.summary.get("os_build") or "", NOT_READY, False,
                             "", "", as_of, "", None, off, base, _live(memory))
    if not d.months:
        row.reason = "no dated events in the logs"
        return row
    # the latest release out by the last event (a log ending before Patch Tuesday is judged
    # on the month before)
    months = d.months
    if len(months) > 1 and as_of is not None and _released(months[-1]) > as_of:
        months = months[:-1]
    cur = months[-1]
    prev = months[-2] if len(months) > 1 else None
    row.latest_quality_update, row.installed_update = cur.expected_kb, cur.installed_kb
    paused = paused_until is not None and (as_of is None or (
        paused_until > as_of and (paused_from is None or paused_from <= as_of)))
    row.update_status, row.reason = _status(cur, prev, paused_until if paused else None)
    if row.update_status == UP_TO_DATE:
        if cur.release_date and cur.effective_at:
            row.days_to_compliance = (cur.effective_at.date() - cur.release_date).days
        row.hotpatched = cur.installed_class in HOTPATCH_CLASSES
    return row


def _released(m: MonthCompliance) -> dt.datetime:
    day = m.release_date or dt.date.fromisoformat(m.month + "-01")
    return dt.datetime.combine(day, dt.time(RELEASE_HOUR_UTC), tzinfo=dt.timezone.utc)


def _status(cur: MonthCompliance, prev: MonthCompliance | None,
            paused_until: dt.datetime | None) -> tuple[str, str]:
    if cur.status == "not-applicable":
        return NOT_READY, cur.reason
    if paused_until is not None:
        return PAUSED, f"quality updates paused until {paused_until:%Y-%m-%d}"
    if cur.status in _HAS_UPDATE:
        return UP_TO_DATE, cur.reason
    if cur.status == "pending-reboot":
        return IN_PROGRESS, cur.reason
    if cur.status in _MISSED:
        return NOT_UP_TO_DATE, cur.reason
    if cur.installed_kb and cur.effective_at is not None and cur.status == "not-covered":
        return UP_TO_DATE, f"{cur.installed_kb} installed (the logs begin after the release)"
    # not-due / not-covered without the month's update: still within the release schedule
    # (In progress) when the month before was on the device, else on an older update
    on_prev = prev is not None and (prev.status in _HAS_UPDATE or (
        prev.installed_kb != "" and prev.effective_at is not None))
    tried = f"; {cur.failures} failed attempt(s)" if cur.failures else ""
    if cur.status == "not-due" and on_prev:
        return IN_PROGRESS, (f"{cur.expected_kb or cur.month} not installed yet, deadline "
                             f"{cur.deadline:%Y-%m-%d}; on {prev.installed_kb} "  # type: ignore[union-attr]
                             f"({prev.month}){tried}")  # type: ignore[union-attr]
    older = (f"; the month before: {prev.status}" if prev is not None
             else "; the logs hold no earlier month")
    missing = cur.expected_kb or cur.month
    return NOT_UP_TO_DATE, f"{missing} not installed ({cur.reason}){older}{tried}"


def _live(memory: list[KbCorrelation] | None) -> str:
    if memory is None:
        return ""
    expected = [r for r in memory if r.expected_live]
    stray = [r.kb for r in memory if r.logs_status == "not in logs"]
    extra = f"; live but not in the logs: {', '.join(stray)}" if stray else ""
    if not expected:
        return "no hotpatch expected live" + extra
    r = expected[0]
    return (f"yes ({r.kb})" if r.memory_findings else f"NO ({r.kb} not live)") + extra


def ring_summaries(rows: Iterable[DeviceUpdateStatus]) -> list[RingSummary]:
    by_ring: dict[str, list[DeviceUpdateStatus]] = defaultdict(list)
    for r in rows:
        by_ring[r.ring].append(r)
    out = []
    for ring in sorted(by_ring):
        rs = by_ring[ring]
        count = {s: sum(1 for r in rs if r.update_status == s) for s in UPDATE_STATUSES}
        ready = len(rs) - count[NOT_READY]
        days = [r.days_to_compliance for r in rs if r.days_to_compliance is not None]
        kbs = sorted({r.latest_quality_update for r in rs if r.latest_quality_update})
        out.append(RingSummary(
            ring=ring, devices=len(rs), up_to_date=count[UP_TO_DATE],
            hotpatched=sum(1 for r in rs if r.hotpatched),
            not_up_to_date=count[NOT_UP_TO_DATE], in_progress=count[IN_PROGRESS],
            pct_latest_quality_update=round(100 * count[UP_TO_DATE] / ready, 1) if ready else None,
            not_ready=count[NOT_READY], paused=count[PAUSED], latest_quality_update=";".join(kbs),
            median_days_to_compliance=statistics.median(days) if days else None,
            fell_off_track=sum(1 for r in rs if r.fell_off_track),
            baseline_missing=sum(1 for r in rs if r.baseline_missing),
            live_in_memory=sum(1 for r in rs if r.live_in_memory.startswith("yes")),
            not_live_in_memory=sum(1 for r in rs if r.live_in_memory.startswith("NO")),
        ))
    return out


_DEVICE_COLUMNS = ("device", "device name", "devicename", "computer")
_RING_COLUMNS = ("ring", "deployment ring", "quality update policy", "policy", "group")


def load_rings(path: Path) -> dict[str, str]:
    """Device -> ring from a CSV: a `device` (or Intune export's `Device name`) column and a
    `ring` (or `Deployment ring` / `Quality update policy`) column; names match case-blind."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            heads = {h.strip().lower(): h for h in reader.fieldnames or []}
            dev = next((heads[c] for c in _DEVICE_COLUMNS if c in heads), None)
            ring = next((heads[c] for c in _RING_COLUMNS if c in heads), None)
            if dev is None or ring is None:
                raise InputError(path, "needs a device column (device / Device name) and a ring "
                                       "column (ring / Deployment ring / Quality update policy)")
            out: dict[str, str] = {}
            for row in reader:
                name = (row.get(dev) or "").strip().lower()
                if name:
                    out[name] = (row.get(ring) or "").strip() or ALL_DEVICES
            return out
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"not a CSV file ({exc})") from None


def fleet_statuses(devices: Iterable[DeviceEvidence], rings: dict[str, str] | None = None,
                   memory: Any = None) -> tuple[list[DeviceUpdateStatus],
                                                dict[str, list[KbCorrelation]]]:
    """Every device's status (rings: device name, lower case -> ring) and, when memory
    findings are given (correlate.MemoryFindings), its rows of installed-vs-live."""
    rings = rings or {}
    rows, live = [], {}
    for d in devices:
        mem = memory.correlate(d.device, d.lifecycles) if memory is not None else None
        if mem is not None:
            live[d.device] = mem
        rows.append(device_status(d, rings.get(d.device.lower(), ALL_DEVICES), mem,
                                  d.summary.get("quality_paused_until"),
                                  d.summary.get("quality_paused_from")))
    return rows, live
