"""Per device and month: was the month's update installed, how, how fast, and does that comply.

The month's expectation comes from the calendar (`month_release`: data first, cadence rule
otherwise). Rules, in the order they are applied:
- A baseline month resets the hotpatch track.
- The month counts as patched by the expected KB, else another update of that month (an
  out-of-band or a standard cumulative update). A later month's update does not patch it
  retroactively: that month is judged on its own row.
- A standard (non-hotpatch) update in a hotpatch month takes the device off the hotpatch track
  until the next baseline: the month is patched (with a restart), flagged `off-track`.
- Nothing installed in a hotpatch month while the quarter's baseline is absent (the logs cover
  its release and show neither its install nor a boot at or past its build): `baseline-missing`,
  the chain hotpatches build on is broken.
- An update that needs a restart is effective only after the next boot (`pending-reboot`).
- Compliant when the month's calendar KB (the hotpatch in a hotpatch month, the baseline in a
  baseline month) is installed and effective between its release and the deadline: the next
  month's release by default, or `grace_days` after release when given. A standard update in a
  hotpatch month is `security_current` but not hotpatch-compliant. Months the logs do not cover
  (they start after the release, or end before the deadline) are not judged.
- A month the device could not be on the hotpatch track (eligibility.py: not enrolled, or
  Arm64 with CHPE on or below 26100.4929) is `not-applicable` with the reason; only
  `security_current` is judged, and it does not take the device off track.
Releases are taken to land at 17:00 UTC on their day (Patch Tuesday, 10:00 Pacific).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from hpforensics.timeline.eligibility import Eligibility
from hpforensics.timeline.lifecycle import HOTPATCH_CLASSES, OS_CLASSES, UpdateLifecycle
from hpforensics.timeline.normalise import Event
from hpforensics.kb.calendar import Calendar, ReleaseKind, iter_months, month_str, parse_month

log = logging.getLogger(__name__)

RELEASE_HOUR_UTC = 17
STATUSES = ("compliant", "off-track", "late", "pending-reboot", "failed", "missing",
            "baseline-missing", "not-due", "not-covered", "not-applicable")


@dataclass
class MonthCompliance:
    device: str
    product: str
    month: str
    month_kind: str
    expected_kb: str
    expected_build: str
    release_date: dt.date | None
    installed_kb: str = ""
    installed_class: str = ""
    installed_at: dt.datetime | None = None
    days_to_install: int | None = None
    effective_at: dt.datetime | None = None
    how: str = ""
    failures: int = 0
    retries: int = 0
    also_installed: str = ""  # other updates of the month (out-of-band), ';'-separated
    deadline: dt.datetime | None = None
    off_track: bool = False
    baseline_missing: bool = False
    security_current: bool | None = None  # the month's fixes installed by the deadline, any way
    compliant: bool | None = None  # hotpatch-compliant; None: the logs cannot tell
    status: str = ""
    reason: str = ""


def month_of(stamp: dt.datetime) -> str:
    return month_str(stamp.year, stamp.month)


def _how(lc: UpdateLifecycle) -> str:
    if lc.effective_at is None:
        return "pending reboot"
    if lc.update_class in HOTPATCH_CLASSES:
        no_reboot = lc.effective_by.startswith("no reboot")
        return "hotpatch, no reboot" if no_reboot else "hotpatch, with reboot"
    return "with reboot"


class ComplianceRules:
    def __init__(self, calendar: Calendar, grace_days: int | None = None) -> None:
        self.calendar = calendar
        self.grace = dt.timedelta(days=grace_days) if grace_days is not None else None

    def released(self, product: str, y: int, m: int) -> dt.datetime:
        release = self.calendar.month_release(product, y, m)
        day = release.date or dt.date(y, m, 1)
        return dt.datetime.combine(day, dt.time(RELEASE_HOUR_UTC), tzinfo=dt.timezone.utc)

    def deadline(self, product: str, y: int, m: int) -> dt.datetime:
        if self.grace is not None:
            return self.released(product, y, m) + self.grace
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        return self.released(product, ny, nm)

    def device_months(
        self, device: str, product: str, lifecycles: list[UpdateLifecycle], boots: list[Event],
        first: dt.datetime, last: dt.datetime, start: str | None = None, end: str | None = None,
        eligibility: Eligibility | None = None,
    ) -> list[MonthCompliance]:
        months = list(iter_months(max(start or "0000-01", month_of(first)),
                                  min(end or "9999-12", month_of(last))))
        installed = [lc for lc in lifecycles if lc.installed_at and lc.update_class in OS_CLASSES]
        boot_builds = self._boot_months(boots)
        rows: list[MonthCompliance] = []
        off_track = False
        capable = product in self.calendar.products
        for month in months:
            y, m = parse_month(month)
            release = self.calendar.month_release(product, y, m)
            kind = release.kind if capable else ReleaseKind.STANDARD
            deadline = self.deadline(product, y, m)
            why = (eligibility.reason(month, deadline)
                   if eligibility is not None and kind != ReleaseKind.STANDARD else "")
            if kind == ReleaseKind.BASELINE or why:
                off_track = False
            row = MonthCompliance(device, product, month, kind.value, release.kb, release.build,
                                  release.date)
            tried = [lc for lc in lifecycles if lc.release_month == month]
            row.failures = sum(lc.failures for lc in tried)
            row.retries = sum(max(lc.attempts - 1, 0) for lc in tried)
            chosen = self._chosen(release.kb, month, installed)
            released = self.released(product, y, m)
            row.deadline = deadline
            row.also_installed = ";".join(
                lc.kb or lc.key for lc in installed
                if lc.release_month == month and lc is not chosen
                and lc.installed_at <= deadline)  # type: ignore[operator]
            if chosen is not None:
                row.installed_kb = chosen.kb or chosen.key
                row.installed_class = chosen.update_class
                row.installed_at = chosen.installed_at
                row.effective_at = chosen.effective_at
                at: dt.datetime = chosen.installed_at  # type: ignore[assignment]
                row.days_to_install = (at.date() - released.date()).days
                row.security_current = at <= deadline and (
                    chosen.effective_at is not None and chosen.effective_at <= deadline)
                row.how = _how(chosen)
                if (kind == ReleaseKind.HOTPATCH and chosen.update_class not in HOTPATCH_CLASSES
                        and not why):
                    off_track = True
            row.off_track = off_track and kind == ReleaseKind.HOTPATCH
            if chosen is None and kind == ReleaseKind.HOTPATCH and not why:
                row.baseline_missing = self._baseline_missing(product, y, m, installed, boot_builds,
                                                              first, deadline)
            self._judge(row, chosen, released, deadline, first, last, why)
            basis = eligibility.basis(month) if eligibility is not None and not why else ""
            if basis and row.status not in ("not-applicable", "not-covered", "not-due"):
                row.reason = f"{row.reason}; {basis}"
            rows.append(row)
        return rows

    def _chosen(self, expected_kb: str, month: str,
                installed: list[UpdateLifecycle]) -> UpdateLifecycle | None:
        same = [lc for lc in installed if lc.release_month == month]
        for lc in same:
            if expected_kb and lc.kb == expected_kb:
                return lc
        if same:
            return min(same, key=lambda lc: lc.installed_at)  # type: ignore[arg-type,return-value]
        return None

    def _boot_months(self, boots: list[Event]) -> list[tuple[dt.datetime, str]]:
        """(boot time, release month) of the builds the device booted (Kernel-General 12)."""
        out = []
        for b in boots:
            if b.os_build and b.time:
                release = self.calendar.lookup_build(b.os_build)
                if release is not None:
                    out.append((b.time, release.month))
        return out

    def _baseline_missing(self, product: str, y: int, m: int, installed: list[UpdateLifecycle],
                          boot_builds: list[tuple[dt.datetime, str]], first: dt.datetime,
                          deadline: dt.datetime) -> bool:
        by, bm = y, m
        for _ in range(12):  # the quarter's baseline: the last baseline month before this one
            by, bm = (by - 1, 12) if bm == 1 else (by, bm - 1)
            if self.calendar.month_kind(product, by, bm) == ReleaseKind.BASELINE:
                break
        else:
            return False
        base_month = month_str(by, bm)
        if first > self.released(product, by, bm):
            return False  # the logs start after the baseline shipped: cannot tell
        # a month the title did not give (None) is no evidence either way (and None >= str raises)
        if any(lc.release_month and lc.release_month >= base_month and lc.installed_at
               and lc.installed_at <= deadline for lc in installed):
            return False
        return not any(month >= base_month and t <= deadline for t, month in boot_builds)

    def _judge(self, row: MonthCompliance, chosen: UpdateLifecycle | None, released: dt.datetime,
               deadline: dt.datetime, first: dt.datetime, last: dt.datetime,
               ineligible: str = "") -> None:
        expected = row.expected_kb or f"the {row.month} {row.month_kind} update"
        if row.month_kind == ReleaseKind.STANDARD.value or ineligible:
            # no hotpatch programme: before the product's first hotpatch month, a device
            # whose build is not a hotpatch-capable release, or one not eligible this month;
            # only security_current is judged
            row.status = "not-applicable"
            row.reason = ((ineligible or f"no hotpatch programme for {row.product} in {row.month}")
                          + (f"; {row.installed_kb} installed" if chosen else ""))
            if chosen is None and first <= released and last >= deadline:
                row.security_current = False
            return
        if chosen is None:
            if first > released:
                row.status, row.reason = "not-covered", "logs begin after the release"
            elif last < deadline:
                row.status = "not-due"
                row.reason = f"logs end before the deadline ({deadline.date()})"
            else:
                row.security_current = False
            if row.status:
                return
            if row.baseline_missing:
                row.status, row.compliant = "baseline-missing", False
                row.reason = f"{expected} not installed; the quarter's baseline is missing"
            elif row.failures:
                row.status, row.compliant = "failed", False
                row.reason = f"{expected} failed {row.failures} time(s), never installed"
            else:
                row.status, row.compliant = "missing", False
                row.reason = f"{expected} not installed"
            return
        late = chosen.installed_at > deadline  # type: ignore[operator]
        if first > released and row.installed_kb != row.expected_kb and not late:
            row.status, row.reason = "not-covered", "logs begin after the release"
            return
        if chosen.effective_at is None:
            row.status, row.compliant = "pending-reboot", False
            row.reason = f"{row.installed_kb} installed but no boot since: not yet effective"
        elif late:
            row.status, row.compliant = "late", False
            row.reason = f"{row.installed_kb} installed {row.days_to_install} days after release"
        elif row.off_track or (row.expected_kb and row.installed_kb != row.expected_kb
                               and row.month_kind == ReleaseKind.HOTPATCH.value):
            row.status, row.compliant = "off-track", False
            row.reason = (f"{row.installed_kb} ({row.installed_class}) instead of {expected}: "
                          "security-current, but off the hotpatch track until the next baseline")
        elif row.expected_kb and row.installed_kb != row.expected_kb:
            row.status, row.compliant = "missing", False
            row.reason = f"{row.installed_kb} installed instead of {expected}"
        else:
            row.status, row.compliant = "compliant", True
            row.reason = f"{row.installed_kb} {row.how} within {row.days_to_install} days"
