"""Simulate Windows 11 24H2 devices month by month: update events into four logs + the truth.

Each device follows the hotpatch cadence unless its scenario says otherwise for a month.
What happened, and the compliance verdict it implies, is recorded next to the events so
tests of the timeline can compare against it (samples/evtx/fleet-plan.json).
"""
from __future__ import annotations

import datetime as _dt
import random
import uuid
from dataclasses import dataclass, field

from . import windows as W
from .event import Event
from .releases import (CALENDAR, OS_BUILD, OUT_OF_BAND_HOTPATCH, STANDARD, UTC,  # noqa: F401
                       next_month, patch_tuesday, update_guid, update_title)

WU_REASON = ("Operating System: Service pack (Planned)", 0x80020010)
USO_WORKER = "C:\\WINDOWS\\uus\\AMD64\\MoUsoCoreWorker.exe"
# A restart the signed-in admin starts from the Start menu after installing an update by hand.
MANUAL_RESTART = ("Other (Unplanned)", 0x0, "C:\\Windows\\explorer.exe", "CONTOSO\\it-admin",
                  "S-1-5-21-3623811015-3361044348-30300820-1013")
# The events that prove what a month's row says (listed per row as "evidence").
EVIDENCE = {(W.WUC, 19), (W.WUC, 20), (W.SERVICING, 2), (W.SERVICING, 3), ("User32", 1074),
            ("Microsoft-Windows-Kernel-General", 12)}


def _status(row: dict) -> str:
    """The verdict in the vocabulary of hpforensics.timeline.compliance.STATUSES."""
    if row["compliant"]:
        return "compliant"
    return {"standard": "off-track", "manual-standard": "off-track",
            "standard-fallback": "off-track", "failed": "failed",
            "not-offered": "baseline-missing"}[row["how"]]


def iso(t: _dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Device:
    """A simulated device. `plan` maps a month to an action; unlisted months follow cadence.

    Actions: "hotpatch", "baseline", "standard" (via Windows Update, off track),
    "manual-standard" (installed by hand), "hotpatch-fail-fallback", "baseline-fail",
    "hotpatch+oob", "none" (nothing offered).
    """

    name: str
    scenario: str
    description: str
    seed: int
    plan: dict[str, str] = field(default_factory=dict)
    logs: dict[str, list[Event]] = field(default_factory=dict)
    months: list[dict] = field(default_factory=list)
    qfe: int = CALENDAR["2025-01"][2]
    other_reboots: list[dict] = field(default_factory=list)
    os_build: int = OS_BUILD  # 26100 (24H2), 26200 (25H2), 26300 (26H2)
    version: str = "24H2"
    arch: str = "x64"  # or "arm64": what the update titles say

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._evidence: list[Event] | None = None
        self.wu_pid = 1400 + self.rng.randrange(0, 4000, 4)
        for ch in (W.SYSTEM, W.SETUP, W.WUC_OPERATIONAL, W.WAASMEDIC_OPERATIONAL):
            self.logs[ch] = []

    # -- primitives ---------------------------------------------------------------------
    def title(self, month: str, kb: str, build: int, hotpatch: bool) -> str:
        return update_title(month, kb, build, hotpatch, version=self.version,
                            os_build=self.os_build, arch=self.arch)

    def _emit(self, ev: Event) -> None:
        self.logs[ev.channel].append(ev)
        if self._evidence is not None and (ev.provider, ev.event_id) in EVIDENCE \
                and ev.channel != W.WUC_OPERATIONAL:
            self._evidence.append(ev)

    def _tid(self) -> int:
        return self.rng.randrange(1000, 12000, 4)

    def _wuc(self, eid: int, t, title, kb, error=None, activity=None) -> None:
        tid = self._tid()
        for ch in (W.SYSTEM, W.WUC_OPERATIONAL):
            self._emit(W.wuc(eid, t, self.name, title=title, update_id=update_guid(kb),
                             revision=1 if kb != "KB2267602" else 200, channel=ch,
                             error_code=error, activity=activity, pid=self.wu_pid, tid=tid))

    def _svc(self, eid: int, t, kb, **kw) -> None:
        self._emit(W.servicing(eid, t, self.name, package=kb, pid=6120, tid=self._tid(), **kw))

    def boot(self, t: _dt.datetime, unexpected_since: _dt.datetime | None = None) -> None:
        if unexpected_since is not None:
            self._emit(W.kernel_power_41(t + _dt.timedelta(seconds=2), self.name))
        self.last_boot = t
        self._emit(W.kernel_boot(t, self.name, self.os_build, self.qfe))
        self._emit(W.eventlog_os_version(t + _dt.timedelta(seconds=9), self.name, self.os_build,
                                         self.qfe))
        self._emit(W.eventlog_started(t + _dt.timedelta(seconds=9), self.name))
        if unexpected_since is not None:
            self._emit(W.eventlog_unexpected(t + _dt.timedelta(seconds=10), self.name,
                                             unexpected_since))

    def restart(self, t: _dt.datetime, manual: bool = False) -> _dt.datetime:
        """A clean restart at t (by Windows Update, or by the admin); returns the boot time."""
        if manual:
            reason, code, process, user, user_sid = MANUAL_RESTART
            self._emit(W.user32_restart(t, self.name, reason, code, process=process, user=user,
                                        user_sid=user_sid))
        else:
            self._emit(W.user32_restart(t, self.name, *WU_REASON, process=USO_WORKER))
        self._emit(W.eventlog_stopped(t + _dt.timedelta(seconds=41), self.name))
        self._emit(W.kernel_shutdown(t + _dt.timedelta(seconds=43), self.name))
        up = t + _dt.timedelta(minutes=2, seconds=self.rng.randrange(10, 50))
        self.boot(up)
        return up

    def install(self, t: _dt.datetime, kb: str, title: str, build: int, reboot: bool,
                fail: int | None = None, manual: bool = False) -> _dt.datetime | None:
        """One update through Windows Update (or by hand); returns when it counted as installed.

        Servicing Client: cumulative updates from Windows Update on 24H2 log UpdateAgentLCU
        (as in published Setup logs); hotpatches WindowsUpdateAgent (no public sample);
        a package added by hand DISM Package Manager Provider.
        """
        via_wu = not manual
        client = ("DISM Package Manager Provider" if manual else
                  "UpdateAgentLCU" if reboot else "WindowsUpdateAgent")
        act = uuid.UUID(int=self.rng.getrandbits(128))
        if via_wu:
            self._wuc(44, t, title, kb, activity=act)
            self._wuc(43, t + _dt.timedelta(minutes=4), title, kb, activity=act)
        self._emit(W.scm_state(t + _dt.timedelta(minutes=4, seconds=5), self.name,
                               "Windows Modules Installer", "running", "TrustedInstaller"))
        # Windows Update stages a cumulative update's package before it installs it.
        self._svc(1, t + _dt.timedelta(minutes=5), kb, client=client,
                  initial="Staged" if reboot and via_wu else "Absent")
        if fail is not None:
            self._svc(3, t + _dt.timedelta(minutes=12), kb, client=client, error_code=fail)
            if via_wu:
                self._wuc(20, t + _dt.timedelta(minutes=13), title, kb, error=fail)
            return None
        # "Installed" is when CBS says so (Servicing 2); Windows Update reports it (19) after.
        self.reported = None
        if not reboot:
            done = t + _dt.timedelta(minutes=9)
            self._svc(2, done, kb, client=client)
            if via_wu:
                self.reported = done + _dt.timedelta(minutes=1)
                self._wuc(19, self.reported, title, kb, activity=act)
            self.qfe = build
            return done
        self._svc(4, t + _dt.timedelta(minutes=15), kb, client=client)
        # Windows Update restarts outside active hours: same day 19:xx, or 03:xx next day if
        # installed late; an admin who installed by hand restarts at once.
        day = t.replace(hour=19, minute=self.rng.randrange(0, 50), second=self.rng.randrange(60))
        if not via_wu:
            day = t + _dt.timedelta(minutes=17, seconds=self.rng.randrange(60))
        elif day <= t + _dt.timedelta(minutes=20):
            day = (t + _dt.timedelta(days=1)).replace(hour=3, minute=self.rng.randrange(0, 50))
        self.qfe = build
        up = self.restart(day, manual=not via_wu)
        done = up + _dt.timedelta(minutes=2)
        self._svc(2, done, kb, client=client)
        if via_wu:
            self.reported = done + _dt.timedelta(minutes=2)
            self._wuc(19, self.reported, title, kb, activity=act)
        return done

    def enrolment(self, t: _dt.datetime, detail: str, enrolled: bool = True) -> None:
        self._emit(W.waasmedic_enrolment(t, self.name, enrolled=enrolled, vbs_state=2,
                                         detail=detail))

    def noise(self, month: str) -> None:
        """Defender intelligence (one a month stands for the many) and MSRT updates ("other"
        updates) and service chatter."""
        pt = patch_tuesday(month)
        n = int(month[-2:]) + 12 * (int(month[:4]) - 2025)
        for k, day in enumerate((19,)):
            t = pt.replace(day=day, hour=6 + self.rng.randrange(10), minute=self.rng.randrange(60))
            ver = f"1.{421 + n * 2 + k}.{self.rng.randrange(100, 900)}.0"
            title = (f"Security Intelligence Update for Microsoft Defender Antivirus - KB2267602 "
                     f"(Version {ver}) - Current Channel (Broad)")
            act = uuid.UUID(int=self.rng.getrandbits(128))
            self._wuc(44, t, title, "KB2267602", activity=act)
            self._wuc(43, t + _dt.timedelta(minutes=1), title, "KB2267602", activity=act)
            self._wuc(19, t + _dt.timedelta(minutes=2), title, "KB2267602", activity=act)
        t = pt + _dt.timedelta(hours=20 + self.rng.randrange(6), minutes=self.rng.randrange(60))
        title = f"Windows Malicious Software Removal Tool x64 - v5.{132 + n} (KB890830)"
        self._wuc(44, t, title, "KB890830")
        self._wuc(43, t + _dt.timedelta(minutes=2), title, "KB890830")
        self._wuc(19, t + _dt.timedelta(minutes=3), title, "KB890830")
        self._emit(W.scm_state(t - _dt.timedelta(seconds=30), self.name, "Windows Update",
                               "running", "wuauserv"))

    # -- the month loop -------------------------------------------------------------------
    def run(self, months: list[str]) -> None:
        start = patch_tuesday(months[0]).replace(day=1, hour=7, minute=12)
        self.boot(start)
        self.enrolment(start + _dt.timedelta(minutes=6), "Hotpatch enrolment confirmed.")
        for month in months:
            self.noise(month)
            self._evidence = []
            boot_before = self.last_boot
            row = self._month(month)
            row["evidence"] = self._evidence
            row["effective_at"] = row["reported_at"] = row["restart_boot_at"] = None
            if row["installed_at"] is not None:
                row["reported_at"] = iso(self.reported)
                # Effective once installed and, when a restart is needed, once the boot that
                # completes it is done: the later of the two (CBS reports after that boot).
                row["effective_at"] = row["installed_at"]
                if row["reboot"] and self.last_boot != boot_before:
                    row["restart_boot_at"] = iso(self.last_boot)
                    row["effective_at"] = max(row["installed_at"], iso(self.last_boot))
            row["status"] = _status(row)
            self._evidence = None
            self.months.append(row)

    def _month(self, month: str) -> dict:
        kind, kb, build = CALENDAR[month]
        action = self.plan.get(month, kind)
        pt = patch_tuesday(month)
        t = pt + _dt.timedelta(days=self.rng.randrange(0, 3), hours=self.rng.randrange(0, 5),
                               minutes=self.rng.randrange(60), seconds=self.rng.randrange(60))
        row = {"month": month, "kind": kind, "expected_kb": kb,
               "expected_build": f"{self.os_build}.{build}",
               "release": iso(pt), "deadline": iso(patch_tuesday(next_month(month))),
               "action": action, "installed_kb": None, "installed_build": None,
               "installed_at": None, "how": "none", "reboot": False, "also_installed": []}
        hot = kind == "hotpatch"
        if action in ("hotpatch", "baseline", "hotpatch+oob"):
            done = self.install(t, kb, self.title(month, kb, build, hot), build, reboot=not hot)
            row.update(installed_kb=kb, installed_build=f"{self.os_build}.{build}",
                       installed_at=iso(done),
                       how=kind, reboot=not hot, compliant=True, security_current=True,
                       why=f"{kind} {kb} installed {'with' if not hot else 'without'} a restart")
            if action == "hotpatch+oob":
                okb, obuild = OUT_OF_BAND_HOTPATCH[month]
                t2 = t + _dt.timedelta(days=9, hours=2)
                main_report = self.reported
                d2 = self.install(t2, okb, self.title(month, okb, obuild, True), obuild,
                                  reboot=False)
                self.reported = main_report
                row["also_installed"].append({"kb": okb, "build": f"{self.os_build}.{obuild}",
                                              "at": iso(d2), "how": "out-of-band-hotpatch"})
                row["why"] += f"; out-of-band hotpatch {okb} also installed without a restart"
            if kind == "baseline":
                self.enrolment(done + _dt.timedelta(minutes=3),
                               "Baseline current; hotpatch offers resume.")
        elif action in ("standard", "manual-standard"):
            skb, sbuild = STANDARD[month]
            manual = action == "manual-standard"
            done = self.install(t, skb, self.title(month, skb, sbuild, False), sbuild,
                                reboot=True, manual=manual)
            row.update(installed_kb=skb, installed_build=f"{self.os_build}.{sbuild}",
                       installed_at=iso(done),
                       how="manual-standard" if manual else "standard", reboot=True,
                       compliant=False, security_current=True)
            row["why"] = (f"standard cumulative update {skb} installed by hand in a hotpatch "
                          "month; off the hotpatch track until the next baseline" if manual else
                          "off the hotpatch track (standard update earlier in the quarter): got "
                          f"standard {skb} with a restart instead of hotpatch {kb}")
            if manual:
                self.enrolment(done + _dt.timedelta(minutes=5), "Standard quality update "
                               "installed; hotpatch offers paused until the next baseline.")
        elif action == "hotpatch-fail-fallback":
            code = 0x800F0922
            self.install(t, kb, self.title(month, kb, build, True), build, reboot=False, fail=code)
            skb, sbuild = STANDARD[month]
            t2 = t + _dt.timedelta(hours=3, minutes=self.rng.randrange(60))
            done = self.install(t2, skb, self.title(month, skb, sbuild, False), sbuild, reboot=True)
            row.update(installed_kb=skb, installed_build=f"{self.os_build}.{sbuild}",
                       installed_at=iso(done),
                       how="standard-fallback", reboot=True, compliant=False, security_current=True,
                       failed=[{"kb": kb, "error_code": f"0x{code:08x}"}],
                       why=f"hotpatch {kb} failed (0x{code:08x}); fell back to standard {skb} with "
                           "a restart")
        elif action == "baseline-fail":
            code = 0x800F0922
            for k in range(2):
                self.install(t + _dt.timedelta(days=3 * k), kb, self.title(month, kb, build, False),
                             build, reboot=True, fail=code)
            row.update(how="failed", compliant=False, security_current=False,
                       failed=[{"kb": kb, "error_code": f"0x{code:08x}"}],
                       why=f"baseline {kb} failed twice (0x{code:08x}); device stays on "
                           f"{self.os_build}.{self.qfe}")
        elif action == "none":
            row.update(how="not-offered", compliant=False, security_current=False,
                       why=f"no update installed: device not on the current baseline "
                           f"(still {self.os_build}.{self.qfe}), so hotpatch {kb} was not offered")
            self.enrolment(pt + _dt.timedelta(days=1, hours=2), "Hotpatch offer skipped: device "
                           f"build {self.os_build}.{self.qfe} is not on the current baseline.")
        else:
            raise ValueError(f"{self.name}: unknown action {action!r} for {month}")
        return row

    last_boot: _dt.datetime | None = None
    reported: _dt.datetime | None = None

    def _qfe_at(self, when: str) -> int:
        """The build revision of the last update in effect at `when` (ISO times sort)."""
        qfe = CALENDAR["2025-01"][2]
        for row in self.months:
            done = [(row.get("effective_at"), row["installed_build"])] + [
                (o["at"], o["build"]) for o in row["also_installed"]]
            for at, build in done:
                if at and build and at <= when:
                    qfe = int(build.split(".")[1])
        return qfe

    def unexpected_reboot(self, when: _dt.datetime) -> None:
        """A power loss at `when`: no clean shutdown events, then 41 + 6008 at the next boot,
        which reports the build the device ran then (added after the months were run)."""
        up = when + _dt.timedelta(minutes=7)
        now, self.qfe = self.qfe, self._qfe_at(iso(when))
        self.boot(up, unexpected_since=when)
        self.qfe = now
        self.other_reboots.append({"lost_power_at": iso(when), "booted_at": iso(up),
                                   "kind": "unexpected (Kernel-Power 41, EventLog 6008)",
                                   "update_related": False})
