"""Whether a device could be on the hotpatch track in a month: the facts that make a month
`not-applicable` (with the reason) instead of `non-compliant`. Sources in docs/calendar.md.

- Enrolment. Windows 11: until April 2026 a device received hotpatches only under a Windows
  quality update policy with hotpatch on; from the May 2026 security update Windows Autopatch
  turns hotpatch on by default for eligible devices (tenants and device groups can opt out).
  So before 2026-05 a client with no sign of enrolment is not judged as a hotpatch device, and
  from 2026-05 it is, unless the logs show it opted out (AllowRebootlessUpdates = 0, the latest
  word at the month's deadline). Windows Server 2025 needs enrolment throughout (Azure Edition,
  or Azure Arc, at no extra cost since 2026-05-19). Signs of enrolment: the registry or
  WaaSMedic evidence (normalise.Category.ENROLMENT) or a hotpatch installed.
- Arm64. Hotpatches need CHPE disabled (HotPatchRestrictions = 1 in Memory Management, or the
  DisableCHPE policy) and build 26100.4929 or later. An Arm64 device whose evidence shows CHPE
  on is not eligible; one below that build is not eligible for that month. Arm64 is known from
  PROCESSOR_ARCHITECTURE in the registry or from update titles ("for arm64-based Systems").
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from hpforensics.timeline.lifecycle import HOTPATCH_CLASSES, UpdateLifecycle
from hpforensics.timeline.normalise import Category, Event
from hpforensics.kb.calendar import BUILD_MAJOR, WINDOWS_SERVER_2025

AUTOPATCH_DEFAULT_FROM = "2026-05"  # hotpatch on by default from the May 2026 security update
ARC_FREE_FROM = dt.date(2026, 5, 19)  # Azure Arc hotpatch for Server 2025 at no extra cost
ARM64_MIN_REVISION = 4929  # Arm64 hotpatching needs 26100.4929 or later
_TITLE_ARCH = re.compile(r"\bfor (arm64|x64)-based systems\b", re.IGNORECASE)
_NO_TIME = dt.datetime.min.replace(tzinfo=dt.timezone.utc)  # .reg exports hold no times
# the categories Eligibility.of reads, as the text events carry (an enum member hashes by name)
_SAYS = frozenset(c.value for c in (
    Category.ENROLMENT, Category.NOT_ENROLLED, Category.CHPE_DISABLED, Category.CHPE_ENABLED,
    Category.ARCH_ARM64, Category.ARCH_X64, Category.BOOT))


@dataclass
class Eligibility:
    """What the device's evidence says; `reason()` answers per month."""

    product: str
    architecture: str = ""  # "arm64", "x64" or "" (not in the evidence)
    chpe: str = ""  # "disabled", "enabled" or ""
    chpe_detail: str = ""
    enrolled: list[dt.datetime] = field(default_factory=list)  # times of enrolment signs
    opted_out: list[tuple[dt.datetime, str]] = field(default_factory=list)
    builds: list[tuple[dt.datetime, str]] = field(default_factory=list)  # booted builds

    @classmethod
    def of(cls, product: str, events: list[Event],
           lifecycles: list[UpdateLifecycle]) -> "Eligibility":
        e = cls(product)
        chpe: dict[str, str] = {}
        # Only events that say something here are sorted and walked (a dense fleet's update
        # events are most of a device's and say nothing but their titles); of the events whose
        # title names the architecture only the earliest counts, found without a sort (each
        # distinct title is searched once).
        arch: dict[str, str] = {}
        first: tuple[dt.datetime, str] | None = None
        said = []
        for ev in events:
            if ev.category in _SAYS:
                said.append(ev)
            title = ev.title
            if title:
                named = arch.get(title)
                if named is None:
                    m = _TITLE_ARCH.search(title)
                    named = arch[title] = m.group(1).lower() if m else ""
                # the earliest; of equal times the first in the list, as a stable sort has it
                if named and (first is None or (ev.time or _NO_TIME) < first[0]):
                    first = (ev.time or _NO_TIME, named)
        titled = first[1] if first else ""  # the registry's PROCESSOR_ARCHITECTURE wins
        for ev in sorted(said, key=lambda x: x.time or _NO_TIME):
            when = ev.time or _NO_TIME
            cat = ev.category
            if cat == Category.ENROLMENT:
                e.enrolled.append(when)
            elif cat == Category.NOT_ENROLLED:
                e.opted_out.append((when, ev.detail))
            elif cat in (Category.CHPE_DISABLED, Category.CHPE_ENABLED):
                chpe["disabled" if cat == Category.CHPE_DISABLED else "enabled"] = ev.detail
            elif cat in (Category.ARCH_ARM64, Category.ARCH_X64):
                e.architecture = "arm64" if cat == Category.ARCH_ARM64 else "x64"
            elif cat == Category.BOOT and ev.os_build and ev.time:
                e.builds.append((ev.time, ev.os_build))
        e.architecture = e.architecture or titled
        # either switch (HotPatchRestrictions = 1, the DisableCHPE policy) turns CHPE off
        e.chpe = "disabled" if "disabled" in chpe else "enabled" if chpe else ""
        e.chpe_detail = chpe.get(e.chpe, "")
        e.enrolled += [lc.installed_at for lc in lifecycles
                       if lc.installed_at and lc.update_class in HOTPATCH_CLASSES]
        return e

    @property
    def summary(self) -> str:
        """One cell for devices.csv: what the device's eligibility rests on."""
        parts = [self.architecture or "architecture unknown"]
        if self.architecture == "arm64":
            parts.append(f"CHPE {self.chpe}" if self.chpe else "CHPE state unknown")
        parts.append("enrolment evidence" if self.enrolled else "no enrolment evidence")
        if self.opted_out:
            parts.append("opt-out evidence")
        return "; ".join(parts)

    def reason(self, month: str, deadline: dt.datetime) -> str:
        """Why the device is not eligible for hotpatches in `month` ('' when it is)."""
        if self.architecture == "arm64":
            if self.chpe == "enabled":
                return (f"not eligible: Arm64 device with CHPE enabled ({_tail(self.chpe_detail)});"
                        " hotpatches need CHPE disabled (HotPatchRestrictions = 1 or the "
                        "DisableCHPE policy)")
            build = self._build_at(deadline)
            revision = _revision(build) if build else None
            if revision is not None and revision < ARM64_MIN_REVISION:
                return (f"not eligible: Arm64 device on {build}; Arm64 hotpatching needs build "
                        f"26100.{ARM64_MIN_REVISION} or later")
        return self._enrolment_reason(month, deadline)

    def _enrolment_reason(self, month: str, deadline: dt.datetime) -> str:
        signs = [t for t in self.enrolled if t <= deadline]
        outs = [(t, d) for t, d in self.opted_out if t <= deadline]
        if outs and (not signs or outs[-1][0] > max(signs)):
            return f"not enrolled in hotpatch: {_tail(outs[-1][1])}"
        if self.enrolled:
            return ""
        if self.product == WINDOWS_SERVER_2025:
            return ("not enrolled: no hotpatch enrolment evidence; Windows Server 2025 needs "
                    "enrolment (Azure Edition, or Azure Arc: free since "
                    f"{ARC_FREE_FROM.isoformat()})")
        if month < AUTOPATCH_DEFAULT_FROM:
            return ("not enrolled: no hotpatch enrolment evidence (policy, registry or a "
                    "hotpatch installed); before the May 2026 update hotpatch needed an explicit "
                    "quality update policy")
        return ""  # Windows Autopatch: hotpatch on by default from May 2026

    def basis(self, month: str) -> str:
        """What an eligible month's judgement rests on when the logs show no enrolment: the
        Autopatch default ('' when there is evidence, or for a server)."""
        if self.enrolled or self.product == WINDOWS_SERVER_2025 or month < AUTOPATCH_DEFAULT_FROM:
            return ""
        return ("judged as enrolled by default: no enrolment evidence, and Windows Autopatch "
                "turns hotpatch on from the May 2026 update")

    def _build_at(self, deadline: dt.datetime) -> str:
        before = [b for t, b in self.builds if t <= deadline]
        if before:
            return before[-1]
        return self.builds[0][1] if self.builds else ""


def _tail(detail: str) -> str:
    """'HKLM\\...\\Memory Management\\HotPatchRestrictions = 0 (REG_DWORD)' -> the value part."""
    head, sep, rest = detail.partition(" = ")
    return (head.rpartition("\\")[2] + sep + rest)[:160]


def _revision(build: str) -> int | None:
    """The revision of a build on the shared client line (26100/26200/26300.N); None else."""
    major, _, rev = build.partition(".")
    if not (major.isdigit() and rev.isdigit()) or int(major) not in BUILD_MAJOR.values():
        return None
    return int(rev)
