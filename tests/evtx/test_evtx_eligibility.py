"""Judged by the calendar past May 2026 and by eligibility, on generated device logs.

Each test writes one device's event logs with the fleet simulator (samples/evtx_writer), and,
where the case needs it, a `reg export` beside them, then runs the timeline on them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpforensics.timeline.pipeline import TimelineOptions

from hpforensics.runs.timeline import run_timeline

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
sys.path.insert(0, str(SAMPLES))

import build_evtx  # noqa: E402
from evtx_writer import windows as W  # noqa: E402
from evtx_writer.fleet import Device  # noqa: E402

MEMORY = r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management"
ENVIRONMENT = r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Session Manager\Environment"
UPDATE_POLICY = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\PolicyManager\current\device\Update"


def device_logs(root: Path, name: str, months: list[str], *, until: str | None = None,
                enrolled: bool = True, reg: dict[str, dict[str, str]] | None = None,
                **device) -> Device:
    """One device's logs under root/name: the simulator's months, its monthly Defender/MSRT
    chatter in `until` (so the logs reach past the last month's deadline), without the
    WaaSMedic enrolment record when not `enrolled`, and a .reg export of `reg` (key -> value
    name -> .reg data) in root/name/registry."""
    dev = Device(name, "test", "", seed=19, **device)
    dev.run(months)
    if until:
        dev.noise(until)
    if not enrolled:
        dev.logs[W.WAASMEDIC_OPERATIONAL].clear()
    build_evtx.write_device(dev, root, seed=19)
    if reg:
        lines = ["Windows Registry Editor Version 5.00", ""]
        for key, values in reg.items():
            lines += [f"[{key}]", *(f'"{n}"={v}' for n, v in values.items()), ""]
        out = root / name / "registry" / "hotpatch.reg"
        out.parent.mkdir(parents=True)
        out.write_bytes(b"\xff\xfe" + "\r\n".join(lines).encode("utf-16-le"))
    return dev


def months_of(root: Path, tmp: Path, **opts) -> tuple[dict, object]:
    result = run_timeline([root], tmp / "out", TimelineOptions(hash_inputs=False, **opts),
                          html=False)
    (dev,) = result.devices
    return {m.month: m for m in dev.months}, result


def test_august_2026_hotpatch_kb5120994_is_a_compliant_hotpatch_month(tmp_path: Path) -> None:
    device_logs(tmp_path / "logs", "HP-WS-101", ["2026-07", "2026-08"], until="2026-09",
                qfe=8655)
    months, result = months_of(tmp_path / "logs", tmp_path)
    aug = months["2026-08"]
    assert (aug.month_kind, aug.expected_kb, aug.expected_build) == (
        "hotpatch", "KB5120994", "26100.9106")
    assert (aug.status, aug.compliant, aug.installed_kb, aug.how) == (
        "compliant", True, "KB5120994", "hotpatch, no reboot")
    july = months["2026-07"]
    assert (july.month_kind, july.installed_kb, july.status) == ("baseline", "KB5101650",
                                                                 "compliant")
    assert months["2026-09"].status == "not-due"  # the logs end before October's release
    assert result.devices[0].product == "windows11-24h2"


def test_logs_past_the_last_confirmed_month_warn_once(tmp_path: Path) -> None:
    for name in ("HP-WS-101", "HP-WS-102"):
        device_logs(tmp_path / "logs", name, ["2026-07", "2026-08"], until="2026-09", qfe=8655)
    result = run_timeline([tmp_path / "logs"], tmp_path / "out", TimelineOptions(
        hash_inputs=False), html=False)
    notes = [n for n in result.notices if "calendar" in n]
    assert len(notes) == 1
    assert ("windows11-24h2" in notes[0] and "2026-05" in notes[0] and "2026-09" in notes[0]
            and "calendar check" in notes[0])
    assert not result.partial  # a notice, not damaged input: exit 0


def test_26h2_device_is_judged_by_its_own_rows(tmp_path: Path) -> None:
    """A device on 26300 is Windows 11 26H2: September 2026 is before its hotpatch programme
    (not-applicable, KB5129195 its release build), October is its baseline month whose KB is
    not known. The same logs read as 24H2 would make September a hotpatch month."""
    dev = Device("HP-WS-126", "test", "", seed=19, os_build=26300, version="26H2", qfe=9457)
    import datetime as dt

    utc = dt.timezone.utc
    dev.boot(dt.datetime(2026, 9, 29, 9, 12, tzinfo=utc))
    dev.enrolment(dt.datetime(2026, 9, 29, 9, 20, tzinfo=utc), "Hotpatch enrolment confirmed.")
    dev.noise("2026-09")
    dev.noise("2026-10")
    dev.noise("2026-11")
    build_evtx.write_device(dev, tmp_path / "logs", seed=19)
    months, result = months_of(tmp_path / "logs", tmp_path)
    assert result.devices[0].product == "windows11-26h2"
    sep = months["2026-09"]
    assert (sep.month_kind, sep.status, sep.compliant) == ("standard", "not-applicable", None)
    assert "windows11-26h2" in sep.reason
    oct_ = months["2026-10"]
    assert (oct_.month_kind, oct_.expected_kb) == ("baseline", "")  # unknown, not guessed
    as_24h2, _ = months_of(tmp_path / "logs", tmp_path / "as24h2", product="windows11-24h2")
    assert as_24h2["2026-09"].month_kind == "hotpatch"


def test_arm64_device_with_chpe_on_is_not_applicable(tmp_path: Path) -> None:
    device_logs(tmp_path / "on", "HP-ARM-001", ["2026-07", "2026-08"], until="2026-09",
                qfe=8655, arch="arm64",
                reg={MEMORY: {"HotPatchRestrictions": "dword:00000000"},
                     ENVIRONMENT: {"PROCESSOR_ARCHITECTURE": '"ARM64"'}})
    months, _ = months_of(tmp_path / "on", tmp_path / "a")
    aug = months["2026-08"]
    assert (aug.status, aug.compliant, aug.installed_kb) == ("not-applicable", None, "KB5120994")
    assert "Arm64" in aug.reason and "CHPE enabled" in aug.reason
    assert "HotPatchRestrictions = 0" in aug.reason  # the evidence it rests on
    assert aug.security_current is True  # still judged: the month's fixes went in
    assert months["2026-07"].status == "not-applicable"
    # CHPE turned off: the same device is judged, and August complies
    device_logs(tmp_path / "off", "HP-ARM-002", ["2026-07", "2026-08"], until="2026-09",
                qfe=8655, arch="arm64", reg={MEMORY: {"HotPatchRestrictions": "dword:00000001"}})
    months, _ = months_of(tmp_path / "off", tmp_path / "b")
    assert (months["2026-08"].status, months["2026-08"].compliant) == ("compliant", True)


def test_arm64_below_26100_4929_is_not_applicable(tmp_path: Path) -> None:
    """August 2025's hotpatch KB5064010 is 26100.4851: an Arm64 device on the July baseline
    (26100.4652) is below 26100.4929, so it was not eligible (CHPE off or not)."""
    device_logs(tmp_path / "logs", "HP-ARM-003", ["2025-07", "2025-08"], until="2025-09",
                qfe=4349, arch="arm64", reg={MEMORY: {"HotPatchRestrictions": "dword:00000001"}})
    months, _ = months_of(tmp_path / "logs", tmp_path)
    aug = months["2025-08"]
    assert aug.status == "not-applicable" and "26100.4929" in aug.reason, aug.reason
    assert "26100.4652" in months["2025-07"].reason  # the build it ran at the deadline


@pytest.mark.parametrize("months,enrolled,status", [
    # before May 2026: no policy, no registry evidence, no hotpatch installed -> not judged
    (["2025-07", "2025-08"], False, "not-applicable"),
    (["2025-07", "2025-08"], True, "compliant"),
    # from May 2026 Windows Autopatch turns hotpatch on by default: judged without evidence
    (["2026-06", "2026-07"], False, "compliant"),
])
def test_enrolment_before_and_after_autopatch_default(tmp_path: Path, months: list[str],
                                                      enrolled: bool, status: str) -> None:
    plan = {months[1]: "baseline"} if months[1] == "2026-07" else {months[1]: "standard"}
    device_logs(tmp_path / "logs", "HP-WS-110", months, until=_next(months[1]), qfe=4270,
                enrolled=enrolled, plan=plan)
    got, _ = months_of(tmp_path / "logs", tmp_path)
    row = got[months[0]]
    assert row.status == status, row.reason
    assert ("judged as enrolled by default" in row.reason) is (not enrolled and status !=
                                                               "not-applicable")
    if status == "not-applicable":
        assert "no hotpatch enrolment evidence" in row.reason and "May 2026" in row.reason
        assert got[months[1]].status == "not-applicable"  # a standard update: not off-track
        assert got[months[1]].security_current is True


def test_opt_out_after_the_default_is_not_applicable(tmp_path: Path) -> None:
    device_logs(tmp_path / "logs", "HP-WS-111", ["2026-06", "2026-07"], until="2026-08",
                qfe=8390, enrolled=False,
                reg={UPDATE_POLICY: {"AllowRebootlessUpdates": "dword:00000000"}})
    got, _ = months_of(tmp_path / "logs", tmp_path)
    july = got["2026-07"]
    assert july.status == "not-applicable" and "not enrolled in hotpatch" in july.reason
    assert "AllowRebootlessUpdates = 0" in july.reason


def _next(month: str) -> str:
    y, m = map(int, month.split("-"))
    return f"{y + m // 12}-{m % 12 + 1:02d}"


def test_timeline_cli_warns_once_past_the_calendar(cli, tmp_path: Path) -> None:
    for name in ("HP-WS-121", "HP-WS-122"):
        device_logs(tmp_path / "logs", name, ["2026-07", "2026-08"], until="2026-09", qfe=8655)
    proc = cli("timeline", tmp_path / "logs", "-o", tmp_path / "out", "--no-html", "--no-hash")
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "calendar:" in line]
    assert len(warned) == 1 and warned[0].startswith("hpforensics: warning: calendar: ")
    assert "windows11-24h2 to 2026-09 (last confirmed 2026-05, 2 device(s))" in warned[0]
    proc = cli("timeline", tmp_path / "logs", "-o", tmp_path / "fleet", "--no-html", "--no-hash",
               "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "calendar:" in line]) == 1


@pytest.mark.parametrize("restrictions,policy,status", [
    (0, None, "not-applicable"),  # CHPE on: not eligible
    (0, 1, "compliant"),  # the DisableCHPE policy turns it off
    (1, None, "compliant"),
])
def test_arm64_chpe_from_the_hives(tmp_path: Path, restrictions: int, policy: int | None,
                                   status: str) -> None:
    """The same evidence in a triage collection's SOFTWARE and SYSTEM hives; the architecture
    comes from PROCESSOR_ARCHITECTURE even where the update titles say nothing of it."""
    import build_hive as B

    root = tmp_path / "kape"
    device_logs(root, "HP-ARM-010", ["2026-07", "2026-08"], until="2026-09", qfe=8655,
                version="24H2")
    config = root / "HP-ARM-010" / B.CONFIG
    config.mkdir(parents=True)
    (config / "SOFTWARE").write_bytes(B.software(disable_chpe=policy).data)
    (config / "SYSTEM").write_bytes(B.system(arm64_restrictions=restrictions).data)
    months, result = months_of(root, tmp_path)
    aug = months["2026-08"]
    assert aug.status == status, aug.reason
    if status == "not-applicable":
        assert "Arm64" in aug.reason and "HotPatchRestrictions = 0" in aug.reason
    cats = {e.category for e in result.devices[0].events}
    assert "architecture-arm64" in cats


def test_the_earliest_update_title_names_the_architecture() -> None:
    """Without registry evidence the architecture is what the earliest update title naming one
    says (of titles logged at the same time, the first read); titles naming none are passed
    over, and the events need not come in time order."""
    import datetime as dt

    from hpforensics.timeline.eligibility import Eligibility
    from hpforensics.timeline.normalise import Event

    def ev(day: int | None, title: str, record: int) -> Event:
        when = dt.datetime(2025, 3, day, tzinfo=dt.timezone.utc) if day else None
        return Event("D", when, "System", "Microsoft-Windows-WindowsUpdateClient", 19, record,
                     "System.evtx", "update-installed", title=title)

    arm = "2025-03 Cumulative Update for Windows 11 Version 24H2 for arm64-based Systems"
    x64 = "2025-03 Cumulative Update for Windows 11 Version 24H2 for x64-based Systems"
    defender = "Security Intelligence Update for Microsoft Defender Antivirus"
    events = [ev(9, arm, 1), ev(5, x64, 2), ev(5, arm, 3), ev(2, defender, 4)]
    assert Eligibility.of("windows-11-24h2", events, []).architecture == "x64"
    events[1], events[2] = events[2], events[1]  # the same time: the first read wins
    assert Eligibility.of("windows-11-24h2", events, []).architecture == "arm64"
    assert Eligibility.of("windows-11-24h2", [*events, ev(None, x64, 5)], []).architecture == \
        "x64"  # a time-less record (a .reg export) sorts first
    assert Eligibility.of("windows-11-24h2", [ev(2, defender, 6)], []).architecture == ""
