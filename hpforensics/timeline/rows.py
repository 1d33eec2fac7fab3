"""Output rows: events, Timesketch-ready timeline lines, update lifecycles, device summaries."""
from __future__ import annotations

import dataclasses
import operator
import datetime as dt
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Sequence

from hpforensics import _rowfmt
from hpforensics.timeline.compliance import MonthCompliance
from hpforensics.timeline.lifecycle import UpdateLifecycle
from hpforensics.timeline.normalise import Category, Event
from hpforensics.timeline.outputs import CsvRows, JsonRows
from hpforensics.evtx.records import parse_time
from hpforensics.timeline.lifecycle import OS_CLASSES

EVENT_COLUMNS = [f.name for f in dataclasses.fields(Event)]
LIFECYCLE_COLUMNS = [f.name for f in dataclasses.fields(UpdateLifecycle)
                     if not f.name.startswith("_")]
COMPLIANCE_COLUMNS = [f.name for f in dataclasses.fields(MonthCompliance)]
# Timesketch's CSV importer needs message, datetime, timestamp_desc; the rest are attributes.
TIMELINE_COLUMNS = ["message", "datetime", "timestamp_desc", "timestamp", "device", "category",
                    "kb", "update_class", "release_month", "provider", "event_id", "record_id",
                    "channel", "error_code", "source", "detail"]
# Columns whose text can come from the log (an attacker can write it): only these need the CSV
# formula / newline guard; the rest are numbers, times and our own vocabulary.
EVENT_TEXT = [i for i, c in enumerate(EVENT_COLUMNS) if c in (
    "device", "channel", "provider", "source", "title", "update_guid", "error_code",
    "package_state", "detail", "reboot_required")]
TIMELINE_TEXT = [i for i, c in enumerate(TIMELINE_COLUMNS) if c in (
    "message", "device", "provider", "channel", "error_code", "source", "detail")]
# CSV renderers of those rows (outputs.CsvRows)
EVENT_CSV = CsvRows(len(EVENT_COLUMNS), EVENT_TEXT)
TIMELINE_CSV = CsvRows(len(TIMELINE_COLUMNS), TIMELINE_TEXT)
EVENT_JSON, TIMELINE_JSON = JsonRows(EVENT_COLUMNS), JsonRows(TIMELINE_COLUMNS)
DEVICE_COLUMNS = ["device", "product", "first_event", "last_event", "events", "boots",
                  "os_build", "booted_build", "hotpatch_enrolment", "updates_installed",
                  "update_failures",
                  "last_installed_kb", "months", "months_compliant", "months_noncompliant",
                  "months_off_track", "months_baseline_missing", "months_unjudged",
                  "compliance_rate", "status", "quality_paused_from", "quality_paused_until"]

_DESC = {
    Category.DOWNLOAD: "Update Download Started",
    Category.START: "Update Installation Started",
    Category.INSTALLED: "Update Installed",
    Category.FAILED: "Update Installation Failed",
    Category.NO_CONNECTION: "Update Service Unreachable",
    Category.UNINSTALL_FAILED: "Update Uninstall Failed",
    Category.REVERT_FAILED: "Update Revert Failed",
    Category.UPDATE_OTHER: "Windows Update Event",
    Category.SERVICING_START: "Package Change Initiated",
    Category.SERVICING_SUCCESS: "Package Change Succeeded",
    Category.SERVICING_FAILURE: "Package Change Failed",
    Category.SERVICING_REBOOT: "Package Change Needs Reboot",
    Category.SERVICING_OTHER: "Servicing Event",
    Category.ENROLMENT: "Hotpatch Enrolment Evidence",
    Category.NOT_ENROLLED: "Hotpatch Not Enrolled",
    Category.CHPE_DISABLED: "CHPE Disabled (Arm64 Hotpatch Ready)",
    Category.CHPE_ENABLED: "CHPE Enabled (Arm64 Hotpatch Blocked)",
    Category.ARCH_ARM64: "Processor Architecture Arm64",
    Category.ARCH_X64: "Processor Architecture x64",
    Category.WAASMEDIC: "Update Medic Event",
    Category.BOOT: "System Boot",
    Category.UNEXPECTED_REBOOT: "Unexpected Reboot",
    Category.SHUTDOWN: "System Shutdown",
    Category.RESTART_INITIATED: "Restart Initiated",
    Category.UPTIME: "Uptime Report",
    Category.HOTPATCH_MENTION: "Hotpatch Mention",
    Category.QUALITY_PAUSED: "Quality Updates Paused",
}


_EVENT_FIELDS = operator.attrgetter(*EVENT_COLUMNS)
_TIME = TIME_INDEX = EVENT_COLUMNS.index("time")


_DESC_BY_VALUE = {c.value: d for c, d in _DESC.items()}
# timeline_values() and the pipeline's sort key rely on these positions
assert TIMELINE_COLUMNS[:5] == ["message", "datetime", "timestamp_desc", "timestamp", "device"]
assert TIMELINE_COLUMNS[11] == "record_id"


def event_tuple(ev: Event) -> tuple[Any, ...]:
    """The event's fields in order: Event(*event_tuple(ev)) == ev."""
    return _EVENT_FIELDS(ev)


def event_values(ev: Event) -> list[Any]:
    """The event's plain values in EVENT_COLUMNS order (the hot path of every output)."""
    values = list(_EVENT_FIELDS(ev))
    values[_TIME] = _iso(values[_TIME])
    return values


_UTC = dt.timezone.utc


def _iso(stamp: dt.datetime | None) -> str:
    """UTC, always with microseconds, so that the strings sort as the times do (the text of
    isoformat(timespec="microseconds") with Z, formatted from the fields: 40 % cheaper)."""
    if stamp is None:
        return ""
    if stamp.tzinfo is not _UTC:
        stamp = stamp.astimezone(_UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (
        stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second,
        stamp.microsecond)


def timeline_values(ev: Event, iso: str) -> list[Any]:
    """The event's timeline line in TIMELINE_COLUMNS order; `iso` is _iso(ev.time)."""
    desc = _DESC_BY_VALUE.get(ev.category, "Event Recorded")
    what = ev.kb or ev.title or ev.os_build or ""
    cls = f" [{ev.update_class} {ev.release_month}]".rstrip() if ev.update_class else ""
    tail = f" error {ev.error_code}" if ev.error_code and ev.result == "failure" else ""
    detail = f": {ev.detail}" if ev.detail else ""
    message = f"{ev.device}: {desc} {what}{cls}{tail}{detail}".replace("  ", " ").strip()
    return [message, iso, desc, int(ev.time.timestamp() * 1_000_000) if ev.time else "",
            ev.device, ev.category, ev.kb, ev.update_class, ev.release_month, ev.provider,
            ev.event_id, ev.record_id, ev.channel, ev.error_code, ev.source, ev.detail or ev.title]


def event_text_py(events: Sequence[Event]) -> tuple[str, str]:
    """An input's events as (events CSV text, events JSONL text): the definition of
    event_text, which does this in C."""
    values = [event_values(ev) for ev in events]
    return EVENT_CSV.text(values), EVENT_JSON.text(values)


# The timeline's sort key of an event: its time's text, device and record ID (as text). Rows that
# agree on all three keep the order they were read in (the timeline is sorted stably).
TimelineKey = tuple[str, str, str]
# An item of the timeline: an event, or a derived row's (CSV line, JSON line)
TimelineItem = Event | tuple[str, str]


def timeline_key_py(ev: Event) -> TimelineKey:
    """The event's key in the timeline's order."""
    return _iso(ev.time), ev.device, str(ev.record_id)


def timeline_lines_py(ev: Event) -> tuple[str, str]:
    """The event's timeline (CSV line, JSON line): the definition of write_timeline's."""
    tv = [timeline_values(ev, _iso(ev.time))]
    return TIMELINE_CSV.lines(tv)[0], TIMELINE_JSON.lines(tv)[0]


def write_timeline_py(items: Sequence[TimelineItem], csv_write: Callable[[bytes], Any],
                      json_write: Callable[[bytes], Any], flush: int = 1 << 22) -> int:
    """The definition of write_timeline (C): the items' timeline lines, in order, as UTF-8
    (strict: a lone surrogate raises), each file's in one write (`flush`, the C side's block
    size, is taken for the same signature; the bytes are the same either way)."""
    lines = [_derived_lines(item) if isinstance(item, tuple) else timeline_lines_py(item)
             for item in items]
    csv_write("".join(c for c, _ in lines).encode("utf-8"))
    json_write("".join(j for _, j in lines).encode("utf-8"))
    return len(lines)


def _derived_lines(item: tuple) -> tuple[str, str]:
    if len(item) != 2 or not all(isinstance(line, str) for line in item):
        raise TypeError("timeline: an item is not an event or two lines")
    return item


def _event_text_one(ev: Event) -> tuple[str, str]:
    return event_text_py([ev])


# In C, as the reference above defines them (bench/rowfmt.py). An event the C side does not take
# (not an exact Event of str fields and a UTC time, as normalise makes them) goes to the
# reference for that one event.
_LINES = _rowfmt.EventLines(Event, EVENT_COLUMNS, EVENT_CSV.fmt, EVENT_JSON.fmt,
                            TIMELINE_CSV.fmt, TIMELINE_JSON.fmt, _DESC_BY_VALUE, _event_text_one,
                            timeline_lines_py)
event_text: Callable[[Sequence[Event]], tuple[str, str]] = _LINES.render
# (items, csv_write, json_write, flush) -> items written
write_timeline: Callable[[Sequence[TimelineItem], Callable[[bytes], Any],
                          Callable[[bytes], Any], int], int] = _LINES.timeline


def timeline_order_py(events: Sequence[Event],
                      derived: Sequence[tuple[TimelineKey, tuple[str, str]]]
                      ) -> list[TimelineItem]:
    """The timeline's items in order: `events` as the run read them (input by input, each in
    its own order) and then the derived rows ((key, lines)), sorted stably by key. A derived
    row's record ID is "", before any event's at the same time and device. The definition of
    timeline_order."""
    keys = [timeline_key_py(ev) for ev in events]
    keys.extend(key for key, _ in derived)
    return _items(events, derived, sorted(range(len(keys)), key=keys.__getitem__))


def _items(events: Sequence[Event], derived: Sequence[tuple[TimelineKey, tuple[str, str]]],
           order: Iterable[int]) -> list[TimelineItem]:
    n = len(events)
    return [events[i] if i < n else derived[i - n][1] for i in order]


def timeline_order(events: Sequence[Event],
                   derived: Sequence[tuple[TimelineKey, tuple[str, str]]]) -> list[TimelineItem]:
    """timeline_order_py's order, sorted in C (the keys of 329,000 events: 0.39 s in Python):
    the time as microseconds, the device as str, the record ID as text, then the position. The
    definition sorts when some event is not a plain one (as normalise makes them)."""
    order = _LINES.order(events, [key for key, _ in derived])
    if order is None:
        return timeline_order_py(events, derived)
    return _items(events, derived, order)


def effective_rows(lifecycles: Iterable[UpdateLifecycle]) -> Iterator[dict[str, Any]]:
    """Derived timeline lines: when each update became effective (the lifecycle's last step)."""
    for lc in lifecycles:
        if lc.effective_at is None:
            continue
        yield {
            "message": f"{lc.device}: Update Effective {lc.kb or lc.key} [{lc.update_class} "
                       f"{lc.release_month}] {lc.effective_by}".replace(" ]", "]"),
            "datetime": _iso(lc.effective_at), "timestamp_desc": "Update Effective",
            "timestamp": int(lc.effective_at.timestamp() * 1_000_000),
            "device": lc.device, "category": "update-effective", "kb": lc.kb,
            "update_class": lc.update_class, "release_month": lc.release_month,
            "provider": "hpforensics", "event_id": "", "record_id": "", "channel": "",
            "error_code": "", "source": "derived", "detail": lc.effective_by,
        }


def lifecycle_row(lc: UpdateLifecycle) -> dict[str, Any]:
    return {c: getattr(lc, c) for c in LIFECYCLE_COLUMNS}


def device_row(device: str, product: str, events: list[Event], lifecycles: list[UpdateLifecycle],
               months: list[MonthCompliance]) -> dict[str, Any]:
    boot, enrolment = Category.BOOT, Category.ENROLMENT  # not looked up per event
    times = [e.time for e in events if e.time]
    builds = sorted((e for e in events if e.os_build and e.time and e.category == boot),
                    key=lambda e: e.time)  # type: ignore[arg-type,return-value]
    installed = sorted((lc for lc in lifecycles if lc.installed_at),
                       key=lambda lc: lc.installed_at)  # type: ignore[arg-type,return-value]
    status = Counter(m.status for m in months)
    judged = [m for m in months if m.compliant is not None]
    good = sum(1 for m in judged if m.compliant)
    worst = next((s for s in ("baseline-missing", "failed", "missing", "pending-reboot", "late",
                              "off-track") if status.get(s)), "compliant" if judged else "unjudged")
    return {
        "device": device, "product": product,
        "first_event": min(times) if times else None, "last_event": max(times) if times else None,
        "events": len(events),
        "boots": sum(1 for e in events if e.category == boot),
        "os_build": running_build(builds[-1].os_build if builds else "", lifecycles),
        "booted_build": builds[-1].os_build if builds else "",
        "hotpatch_enrolment": any(e.category == enrolment for e in events),
        "updates_installed": len(installed),
        "update_failures": sum(lc.failures for lc in lifecycles),
        "last_installed_kb": installed[-1].kb if installed else "",
        "months": len(months), "months_compliant": good,
        "months_noncompliant": len(judged) - good,
        "months_off_track": status.get("off-track", 0),
        "months_baseline_missing": status.get("baseline-missing", 0),
        "months_unjudged": len(months) - len(judged),
        "compliance_rate": round(good / len(judged), 3) if judged else None,
        "status": worst,
        # a quality-update pause the registry shows (normalise: 'from|until <time>')
        "quality_paused_from": _pause(events, "from "),
        "quality_paused_until": _pause(events, "until "),
    }


def _pause(events: list[Event], which: str) -> dt.datetime | None:
    paused = Category.QUALITY_PAUSED
    return max((t for e in events if e.category == paused and e.detail.startswith(which)
                if (t := parse_time(e.detail[len(which):])) is not None), default=None)


def running_build(booted: str, lifecycles: Iterable[UpdateLifecycle]) -> str:
    """The build the device runs: a hotpatch does not restart the device, so no boot reports
    the build it brings; the newest of the last booted build and the builds of the OS updates
    that took effect (a hotpatch's is its own: 26100.4851 for KB5064010)."""

    builds = [lc.os_build for lc in lifecycles
              if lc.os_build and lc.effective_at is not None and lc.update_class in OS_CLASSES]
    return max([booted, *builds], key=_build_key) if booted or builds else ""


def _build_key(build: str) -> tuple[int, ...]:
    parts = build.split(".")[-2:]
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)


MONTH_COLUMNS = ["month", "month_kind", "expected_kb", "devices", "compliant", "noncompliant",
                 "unjudged", "compliance_rate", "security_current", "median_days_to_install",
                 "max_days_to_install", "off_track", "baseline_missing", "failed", "failures"]


def month_rows(months: Iterable[MonthCompliance]) -> list[dict[str, Any]]:
    """The fleet per month: how many devices complied, how fast, and what went wrong."""
    import statistics  # here, not at start-up

    by_month: dict[str, list[MonthCompliance]] = {}
    for m in months:
        by_month.setdefault(m.month, []).append(m)
    rows = []
    for month in sorted(by_month):
        ms = by_month[month]
        judged = [m for m in ms if m.compliant is not None]
        good = sum(1 for m in judged if m.compliant)
        days = sorted(m.days_to_install for m in ms if m.days_to_install is not None)
        kinds = Counter(m.month_kind for m in ms)
        kbs = Counter(m.expected_kb for m in ms if m.expected_kb)
        rows.append({
            "month": month, "month_kind": kinds.most_common(1)[0][0],
            "expected_kb": ";".join(kb for kb, _ in kbs.most_common()),
            "devices": len(ms), "compliant": good, "noncompliant": len(judged) - good,
            "unjudged": len(ms) - len(judged),
            "compliance_rate": round(good / len(judged), 3) if judged else None,
            "security_current": sum(1 for m in ms if m.security_current),
            "median_days_to_install": statistics.median(days) if days else None,
            "max_days_to_install": days[-1] if days else None,
            "off_track": sum(1 for m in ms if m.off_track),
            "baseline_missing": sum(1 for m in ms if m.baseline_missing),
            "failed": sum(1 for m in ms if m.status == "failed"),
            "failures": sum(m.failures for m in ms),
        })
    return rows
