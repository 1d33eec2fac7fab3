#!/usr/bin/env python3
"""Write samples/kape/: a KAPE-style triage collection of sample device HP-WS-001 holding its
registry hives, as KAPE's RegistryHives target copies them:

    HP-WS-001/C/Windows/System32/config/SOFTWARE        (+ SOFTWARE.LOG1, SOFTWARE.LOG2)
    HP-WS-001/C/Windows/System32/config/SYSTEM          (+ SYSTEM.LOG1, SYSTEM.LOG2)

What the hives say is what an enrolled Windows 11 24H2 client holds (the same values and times
as the Velociraptor sample, samples/build_velociraptor.py): the hotpatch policy
AllowRebootlessUpdates = 1 under PolicyManager\\current\\device\\Update (with its _ProviderSet /
_WinningProvider companions and PolicyManager\\default look-alikes that are not the policy),
and HotPatchTableSize = 0x1000 under Memory Management of ControlSet002, the set Select\\Current
names; ControlSet001 holds an older copy with 0. The transaction logs hold no entries (every
change flushed). The event logs of the device are in samples/evtx/HP-WS-001: point the timeline
at both folders. Deterministic: the same bytes on every run (regf_writer/).

    python samples/build_hive.py [OUTDIR]
    python samples/build_hive.py --dirty OUTDIR   # HP-WS-002: SOFTWARE dirty, .LOG1/.LOG2 hold
                                                  # the policy (dirty_software), not committed
"""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regf_writer import Key, LogEntry, Value, Written, log_file, write_hive  # noqa: E402

HERE = Path(__file__).resolve().parent
DEVICE = "HP-WS-001"
CONFIG = Path("C/Windows/System32/config")
UTC = dt.timezone.utc
INSTALLED = dt.datetime(2024, 10, 1, 9, 30, tzinfo=UTC)  # the OS install: most keys' times
ENROLLED = dt.datetime(2025, 2, 1, 7, 18, tzinfo=UTC)  # the policy arrives (Update key written)
TABLE = dt.datetime(2025, 2, 1, 7, 20, tzinfo=UTC)  # Memory Management written
COLLECTED = dt.datetime(2026, 5, 20, 9, 0, tzinfo=UTC)
UPDATE = r"Microsoft\PolicyManager\current\device\Update"
DYNAMIC = UPDATE + r"\TargetingInfo\DynamicInstalled"
MEMORY = r"Control\Session Manager\Memory Management"
ENVIRONMENT = r"Control\Session Manager\Environment"
SYSTEM_POLICY = r"Microsoft\PolicyManager\current\device\System"
UPDATES = (2033, 2314, 2605, 2894, 3037, 3194, 3323, 3476, 3624, 3775, 3915, 4061)
PROVIDER = "{A5C5E8B2-6F1E-4C47-9C3C-2B5E1C0D7F10}"  # an MDM enrolment's ID (sample)


def software(allow: int | None = 1, hotpatch_package: bool = False, *, when: dt.datetime = ENROLLED,
             leaf: str = "lh", sequence: tuple[int, int] = (41, 41),
             updates: tuple[int, ...] = UPDATES, deadline: int = 7,
             pause: tuple[dt.datetime, dt.datetime] | None = None,
             disable_chpe: int | None = None) -> Written:
    """The SOFTWARE hive: `allow` the AllowRebootlessUpdates policy (None: not set),
    `hotpatch_package` a server's Hotpatch Enrollment Package key under DynamicInstalled,
    `updates` the build revisions of the cumulative updates installed, `pause` a quality-update
    pause (start, end) as the Settings app writes it (WindowsUpdate\\UX\\Settings),
    `disable_chpe` the System/DisableCHPE policy (Arm64; None: not set)."""
    root = Key("ROOT", INSTALLED)
    update = root.add(UPDATE, INSTALLED)
    update.time = when
    if allow is not None:
        update.values += [Value.dword("AllowRebootlessUpdates", allow),
                          Value.dword("AllowRebootlessUpdates_ProviderSet", 1),
                          Value.sz("AllowRebootlessUpdates_WinningProvider", PROVIDER)]
    update.values.append(Value.dword("ConfigureDeadlineForQualityUpdates", deadline))
    if disable_chpe is not None:
        root.add(SYSTEM_POLICY, when, [Value.dword("DisableCHPE", disable_chpe),
                                       Value.dword("DisableCHPE_ProviderSet", 1)])
    dynamic = root.add(DYNAMIC, INSTALLED)
    dynamic.add("Client.OS.rs2.amd64", INSTALLED, [Value.sz("Version", "10.0.26100.1")])
    if hotpatch_package:
        dynamic.add("Hotpatch.amd64", when, [
            Value.sz("Name", "Hotpatch Enrollment Package"),
            Value.sz("Version", "10.0.26100.1742"),
            Value.multi_sz("Owners", ["Hotpatch"])])
    if pause is not None:
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        root.add(r"Microsoft\WindowsUpdate\UX\Settings", pause[0], [
            Value.sz("PauseQualityUpdatesStartTime", pause[0].strftime(stamp)),
            Value.sz("PauseQualityUpdatesEndTime", pause[1].strftime(stamp))])
    # PolicyManager\default describes each policy (a key per policy, not the setting)
    root.add(r"Microsoft\PolicyManager\default\Update\AllowRebootlessUpdates", INSTALLED,
             [Value.dword("value", 0), Value.dword("Behavior", 32)])
    root.add(r"Microsoft\Windows NT\CurrentVersion", INSTALLED, [
        Value.sz("ProductName", "Windows 10 Enterprise"), Value.sz("DisplayVersion", "24H2"),
        Value.sz("CurrentBuild", "26100"), Value.dword("UBR", 3194),
        Value.sz("EditionID", "Enterprise"),
        Value("DigitalProductId4", 3, bytes(range(256)) * 5)])
    # the servicing stack's record of installed cumulative updates (nothing here reads it; it
    # makes the hive span several bins, as real ones do)
    cbs = root.add(r"Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages",
                   INSTALLED)
    for ubr in updates:
        cbs.add(f"Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.{ubr}.1.7", INSTALLED, [
            Value.dword("CurrentState", 0x70), Value.dword("Visibility", 1),
            Value.sz("InstallLocation", rf"\\?\C:\Windows\SoftwareDistribution\Download\{ubr}"),
            Value.sz("InstallUser", "S-1-5-18")])
    return write_hive(root, file_name=r"\SystemRoot\System32\Config\SOFTWARE", time=COLLECTED,
                      sequence=sequence, leaf=leaf)


def system(current: int = 2, table_size: int = 0x1000, *, other: int = 0,
           when: dt.datetime = TABLE, select: bool = True,
           sequence: tuple[int, int] = (88, 88), arm64_restrictions: int | None = None) -> Written:
    """The SYSTEM hive: Select\\Current = `current`; that ControlSet00N holds HotPatchTableSize
    = `table_size` (written at `when`), the other set an older copy with `other`. With
    `arm64_restrictions` an Arm64 device's: PROCESSOR_ARCHITECTURE = ARM64 and
    HotPatchRestrictions = that value (1: CHPE off) in the chosen set."""
    root = Key("ROOT", INSTALLED)
    if select:
        root.add("Select", INSTALLED, [Value.dword("Current", current),
                                       Value.dword("Default", current),
                                       Value.dword("Failed", 0),
                                       Value.dword("LastKnownGood", 3 - current)])
    for n in (1, 2):
        chosen = n == current
        cs = f"ControlSet{n:03d}"
        mm = root.add(f"{cs}\\{MEMORY}", INSTALLED)
        mm.time = when if chosen else INSTALLED
        mm.values += [Value.dword("ClearPageFileAtShutdown", 0),
                      Value.multi_sz("PagingFiles", [r"?:\pagefile.sys"]),
                      Value.dword("HotPatchTableSize", table_size if chosen else other)]
        if arm64_restrictions is not None and chosen:
            mm.values.append(Value.dword("HotPatchRestrictions", arm64_restrictions))
            root.add(f"{cs}\\{ENVIRONMENT}", INSTALLED,
                     [Value.sz("PROCESSOR_ARCHITECTURE", "ARM64"),
                      Value.sz("NUMBER_OF_PROCESSORS", "8")])
        root.add(f"{cs}\\Control\\ComputerName\\ComputerName", INSTALLED,
                 [Value.sz("ComputerName", DEVICE)])
    return write_hive(root, file_name=r"\SystemRoot\System32\Config\SYSTEM", time=COLLECTED,
                      sequence=sequence)


REPLAYED = dt.datetime(2026, 5, 20, 8, 40, tzinfo=UTC)  # the change only the logs hold
NEWER_UPDATES = UPDATES + (4202, 4349, 4484, 4652, 4770, 4946)


class Dirty(NamedTuple):
    """A dirty SOFTWARE hive copied from a running system, and its two transaction logs."""

    disk: Written  # what the hive file holds (sequence numbers 42 and 41)
    middle: Written  # after the first log entry (41, in .LOG2)
    final: Written  # after the second (42, in .LOG1): what Windows would read
    log1: bytes
    log2: bytes


def _pages(old: bytes, new: bytes) -> list[tuple[int, bytes]]:
    """The 4 KiB pages of the hive bins data that differ (the new hive may be longer)."""
    return [(at - 4096, new[at:at + 4096]) for at in range(4096, len(new), 4096)
            if old[at:at + 4096] != new[at:at + 4096]]


def dirty_software() -> Dirty:
    """On disk AllowRebootlessUpdates = 0 (Update key written at ENROLLED), sequence numbers 42
    and 41. .LOG2 (sequence 41) holds entry 41: ConfigureDeadlineForQualityUpdates 7 -> 3, then a
    stale entry 39; .LOG1 (sequence 42) holds entry 42: AllowRebootlessUpdates = 1 written at
    REPLAYED, the Hotpatch.amd64 package key and six more updates (the hive grows a bin), then a
    stale entry 40 that would put the disk's pages back. Replayed by the rules, the hive reads
    as `final`; the stale entries change nothing."""
    disk = software(allow=0, sequence=(42, 41))
    middle = software(allow=0, sequence=(42, 41), deadline=3)
    final = software(allow=1, hotpatch_package=True, when=REPLAYED, sequence=(42, 41),
                     updates=NEWER_UPDATES, deadline=3)
    size = len(final.data) - 4096
    name = r"\SystemRoot\System32\Config\SOFTWARE"
    stale = LogEntry(size, _pages(final.data, disk.data) + [(size - 4096, bytes(4096))])
    log2 = log_file(name, COLLECTED, 41, (
        LogEntry(len(middle.data) - 4096, _pages(disk.data, middle.data)),
        LogEntry(stale.bins_size, stale.pages, sequence=39)), root=disk.keys[""] - 4096,
        bins_size=len(disk.data) - 4096)
    log1 = log_file(name, COLLECTED, 42, (
        LogEntry(size, _pages(middle.data, final.data)),
        LogEntry(stale.bins_size, stale.pages, sequence=40)), root=final.keys[""] - 4096,
        bins_size=size)
    return Dirty(disk, middle, final, log1, log2)


def build_dirty(out: Path, device: str = "HP-WS-002") -> Path:
    """A device whose SOFTWARE hive is dirty with valid logs (dirty_software), SYSTEM clean;
    returns its config folder."""
    config = out / device / CONFIG
    config.mkdir(parents=True, exist_ok=True)
    dirty = dirty_software()
    (config / "SOFTWARE").write_bytes(dirty.disk.data)
    (config / "SOFTWARE.LOG1").write_bytes(dirty.log1)
    (config / "SOFTWARE.LOG2").write_bytes(dirty.log2)
    (config / "SYSTEM").write_bytes(system().data)
    return config


def build(out: Path, device: str = DEVICE, **software_args: object) -> Path:
    """The collection of one device under `out`; returns its config folder."""
    config = out / device / CONFIG
    config.mkdir(parents=True, exist_ok=True)
    for name, hive, seq in (("SOFTWARE", software(**software_args), 41),  # type: ignore[arg-type]
                            ("SYSTEM", system(), 88)):
        (config / name).write_bytes(hive.data)
        for log in ("LOG1", "LOG2"):
            (config / f"{name}.{log}").write_bytes(
                log_file(rf"\SystemRoot\System32\Config\{name}", COLLECTED, seq))
    return config


def main(argv: list[str]) -> int:
    dirty = argv[1:2] == ["--dirty"]  # HP-WS-002 with a dirty SOFTWARE hive and its logs
    args = argv[2:] if dirty else argv[1:]
    out = Path(args[0]) if args else HERE / "kape"
    config = build_dirty(out) if dirty else build(out)
    for f in sorted(config.iterdir()):
        print(f"{f.relative_to(out)}  {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
