"""Per device, the life of each update: download -> start -> installed / failed -> effective.

An update is keyed by its KB (else its update GUID, else its title), so Windows Update Client
events (19/20/43/44) and servicing events (Setup 1-4) for the same KB join. A hotpatch is
effective when installed (no restart); anything else, or a hotpatch whose servicing said a
reboot is required, becomes effective at the first boot after it was installed.
"""
from __future__ import annotations

import bisect
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from hpforensics.timeline.normalise import BOOT_EVIDENCE, UPDATE_CATEGORIES, Category, Event

log = logging.getLogger(__name__)

HOTPATCH_CLASSES = frozenset({"hotpatch", "out-of-band-hotpatch"})
OS_CLASSES = frozenset({"baseline", "hotpatch", "out-of-band", "out-of-band-hotpatch", "standard"})


@dataclass
class UpdateLifecycle:
    device: str
    key: str
    kb: str = ""
    title: str = ""
    update_guid: str = ""
    update_class: str = ""
    release_month: str | None = ""  # None: a standard update whose month the title lacks
    os_build: str = ""
    first_seen: dt.datetime | None = None
    downloaded_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    installed_at: dt.datetime | None = None
    last_failed_at: dt.datetime | None = None
    attempts: int = 0
    failures: int = 0
    error_codes: str = ""
    reboot_required: bool | None = None
    effective_at: dt.datetime | None = None
    effective_by: str = ""
    restart: str = ""  # the USER32 1074 before that boot: who restarted, and why
    status: str = ""  # installed / pending-reboot / failed / in-progress / downloaded
    reboot_asked_at: dt.datetime | None = None  # servicing: "reboot required"
    # (counter, time) pairs seen: the WU client logs the same event to System and to its
    # Operational channel, which must count once
    _seen: set[tuple[str, dt.datetime | None]] = field(default_factory=set, repr=False)


def _key(ev: Event) -> str:
    return ev.kb or ev.update_guid or ev.title or ""


def build_lifecycles(events: Iterable[Event], boots: list[Event]) -> list[UpdateLifecycle]:
    """Lifecycles of one device's update events (any order); `boots` from boot_events()."""
    events = list(events)
    by_key: dict[str, UpdateLifecycle] = {}
    ordered = sorted((e for e in events if e.category in UPDATE_CATEGORIES and _key(e)),
                     key=lambda e: (e.time or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
                                    e.record_id))
    codes: dict[str, list[str]] = {}
    for ev in ordered:
        key = _key(ev)
        lc = by_key.get(key)
        if lc is None:
            lc = by_key[key] = UpdateLifecycle(ev.device, key, first_seen=ev.time)
            codes[key] = []
        _absorb(lc, ev, codes[key])
    boot_times = [b.time for b in boots if b.time is not None]  # boot_events() kept timed ones
    restart = Category.RESTART_INITIATED
    restarts = sorted((e for e in events if e.category == restart and e.time),
                      key=lambda e: e.time)  # type: ignore[arg-type,return-value]
    for lc in by_key.values():
        # WU and servicing both log one attempt / failure: count the source that saw more
        counts = Counter(name for name, _ in lc._seen)
        lc.attempts = max(counts["wu-start"], counts["sv-start"])
        lc.failures = max(counts["wu-fail"], counts["sv-fail"])
        lc.error_codes = ";".join(dict.fromkeys(c for c in codes[lc.key] if c))
        _effective(lc, boots, boot_times, restarts)
        lc.status = _status(lc)
    return sorted(by_key.values(), key=lambda lc: (lc.first_seen or _EPOCH, lc.key))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


# module constants: an enum member looked up on its class costs ~70 ns, and this runs per event
_DOWNLOAD, _START = Category.DOWNLOAD, Category.START
_SERVICING_START, _SERVICING_REBOOT = Category.SERVICING_START, Category.SERVICING_REBOOT


def _absorb(lc: UpdateLifecycle, ev: Event, codes: list[str]) -> None:
    lc.kb = lc.kb or ev.kb
    lc.title = lc.title or ev.title
    lc.update_guid = lc.update_guid or ev.update_guid
    lc.os_build = lc.os_build or ev.os_build
    if ev.update_class and (not lc.update_class or lc.update_class == "other"):
        lc.update_class, lc.release_month = ev.update_class, ev.release_month
    cat = ev.category
    if cat == _DOWNLOAD:
        lc.downloaded_at = lc.downloaded_at or ev.time
    elif cat == _START or cat == _SERVICING_START:
        lc.started_at = lc.started_at or ev.time
        lc._seen.add(("wu-start" if cat == _START else "sv-start", ev.time))
    elif cat == _SERVICING_REBOOT:
        lc.reboot_asked_at = lc.reboot_asked_at or ev.time
    if ev.result == "success" and lc.installed_at is None:
        lc.installed_at = ev.time
    elif ev.result == "failure":
        lc.last_failed_at = ev.time
        lc._seen.add(("sv-fail" if ev.provider.endswith("Servicing") else "wu-fail", ev.time))
        codes.append(ev.error_code)
    if ev.reboot_required is not None:
        lc.reboot_required = ev.reboot_required if lc.reboot_required is None else (
            lc.reboot_required or ev.reboot_required)


def _effective(lc: UpdateLifecycle, boots: list[Event], boot_times: list[dt.datetime],
               restarts: list[Event]) -> None:
    if lc.installed_at is None:
        return
    no_reboot = (lc.update_class in HOTPATCH_CLASSES and not lc.reboot_required) or (
        lc.update_class not in OS_CLASSES and lc.reboot_required is not True)
    if no_reboot:
        lc.effective_at = lc.installed_at
        lc.effective_by = ("no reboot needed (hotpatch)" if lc.update_class in HOTPATCH_CLASSES
                           else "no reboot needed")
        return
    # Servicing finishes a restart-bound update during the boot, so the WU client may log
    # "installed" after the boot that made it effective: look for the first boot after the
    # reboot request (else after the start), not after the install record.
    anchor = lc.reboot_asked_at or lc.started_at or lc.installed_at
    i = bisect.bisect_right(boot_times, anchor)
    if i < len(boot_times):
        boot = boots[i]
        lc.effective_at = max(boot.time, lc.installed_at)  # type: ignore[type-var]
        lc.effective_by = f"boot at {boot.time:%Y-%m-%d %H:%M} ({boot.provider} {boot.event_id})"
        asked = [r for r in restarts if anchor < r.time < boot.time]  # type: ignore[operator]
        if asked:
            lc.restart = f"{asked[-1].time:%Y-%m-%d %H:%M} {asked[-1].detail}".strip()


def _status(lc: UpdateLifecycle) -> str:
    if lc.installed_at is not None:
        return "installed" if lc.effective_at is not None else "pending-reboot"
    if lc.failures:
        return "failed"
    if lc.started_at is not None:
        return "in-progress"
    if lc.downloaded_at is not None:
        return "downloaded"
    return "seen"


def boot_events(events: Iterable[Event]) -> list[Event]:
    return sorted((e for e in events if e.category in BOOT_EVIDENCE and e.time is not None),
                  key=lambda e: e.time)  # type: ignore[arg-type,return-value]
