#!/usr/bin/env python3
"""Generate the ETW sample: a Windows 11 24H2 device's update-audit trace, 2025-01 .. 2025-04.

    python samples/build_etl.py [--out DIR] [--plan FILE]

An autologger session ("HotpatchAudit") on device HP-ETW-01 records the Windows Update Client,
Kernel-General and Kernel-Process (image loads) providers into one .etl file per boot, laid
out like a triage collection (<device>/C/Windows/System32/LogFiles/WMI/*.etl). The quarter:
January's baseline installed with a restart, February's hotpatch installed without one (the
patch image's load is traced), March's hotpatch failing once and installed the next day, April's
baseline with a restart. The plan (etl-plan.json) lists every record of every file with its
decoded fields and, per month, the verdict a correct timeline must reach. Output depends only
on the arguments: the same bytes on every run.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from etl_writer import EtlWriter, EtwEvent, Session  # noqa: E402
from etl_writer import windows as W  # noqa: E402
from etl_writer.render import render  # noqa: E402
from etl_writer.structs import COMPRESSION_FORMAT_LZNT1  # noqa: E402
from evtx_writer.releases import CALENDAR, OS_BUILD, update_guid, update_title  # noqa: E402

UTC = _dt.timezone.utc
DEVICE = "HP-ETW-01"
LOGGER = "HotpatchAudit"
WMI_DIR = Path("C/Windows/System32/LogFiles/WMI")
WU_PID, WU_TID = 3120, 6644  # svchost hosting wuauserv
SVC_PID, SVC_TID = 6120, 6204  # TrustedInstaller
HERE = Path(__file__).resolve().parent
WUAUENG = r"\Device\HarddiskVolume3\Windows\System32\wuaueng.dll"
# Kernel-General 12 comes a few seconds after the boot; a restart takes effect at that event.
BOOT_EVENT_DELAY = _dt.timedelta(seconds=6)


def _iso(when: _dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def at(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class BootSession:
    boot: _dt.datetime
    qfe: int  # running build revision
    end: _dt.datetime  # shutdown, or when the trace was collected
    shutdown: bool
    events: list[EtwEvent] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        return f"{LOGGER}-{self.boot:%Y%m%d-%H%M%S}.etl"


def _image_load(when: _dt.datetime, name: str, pid: int = WU_PID) -> EtwEvent:
    digest = hashlib.sha256(name.encode()).digest()
    base = 0x7FF800000000 + int.from_bytes(digest[:2], "little") * 0x10000  # user space
    return W.image_load(when, pid=pid, name=name, base=base,
                        size=0x1000 * (16 + digest[3]),
                        checksum=int.from_bytes(digest[4:8], "little"),
                        timestamp=0x60000000 + int.from_bytes(digest[8:11], "little"))


def _update(session: BootSession, month: str, steps: list[tuple[str, int, str]],
            error_code: int = 0) -> None:
    """Windows Update client ("wu") and servicing stack ("svc") events for the month's
    calendar update, at the given times, in the order the EVTX fleet sample has them: the
    package change starts after the client's 43; a hotpatch's change succeeds (2) before the
    client reports 19; a baseline's asks for a reboot (4) and succeeds during the next boot."""
    kind, kb, build = CALENDAR[month]
    title = update_title(month, kb, build, hotpatch=kind == "hotpatch")
    for source, event_id, when in steps:
        if source == "svc":
            session.events.append(W.servicing(
                event_id, at(when), package=kb, client="WindowsUpdateAgent",
                initial="Staged" if kind == "baseline" else "Absent",
                error_code=error_code if event_id == 3 else 0, pid=SVC_PID, tid=SVC_TID))
            continue
        session.events.append(W.wuc(event_id, at(when), title=title, update_id=update_guid(kb),
                                    revision=1, error_code=error_code if event_id == 20 else 0,
                                    pid=WU_PID, tid=WU_TID))
        if event_id == 43:  # the installer's libraries load when an installation starts
            session.events.append(_image_load(at(when) + _dt.timedelta(seconds=2), WUAUENG))


def _patch_path(kb: str) -> str:  # our wording: no public sample shows the real one
    return rf"\SystemRoot\System32\hotpatch\{kb}\ntoskrnl.hotpatch.sys"


def _applied(when: str, kb: str) -> EtwEvent:
    """The kernel's TraceLogging record of the patch applied to the running kernel image."""
    return W.hotpatch_applied(at(when), image="ntoskrnl.exe", base_checksum=0x00C2A1F7,
                              base_timestamp=0x6776C1B5, patch_path=_patch_path(kb))


def _weekly_noise(session: BootSession) -> None:
    """Image loads that do not matter to an update audit (the reader must leave them out)."""
    day = session.boot + _dt.timedelta(days=1, hours=5)
    while day < session.end - _dt.timedelta(hours=1):
        session.events.append(_image_load(
            day, r"\Device\HarddiskVolume3\ProgramData\Microsoft\Windows Defender\Platform"
                 r"\4.18.24090.11-0\MpSvc.dll", pid=4712))
        day += _dt.timedelta(days=7)


def scenario() -> tuple[list[BootSession], dict[str, dict]]:
    """The device's three boots and the per-month truth."""
    s1 = BootSession(at("2025-01-05 07:58:12"), 2528, at("2025-01-15 02:58:40"), True)
    _update(s1, "2025-01", [("wu", 44, "2025-01-14 18:20:05"), ("wu", 43, "2025-01-14 18:41:37"),
                            ("svc", 1, "2025-01-14 18:42:10"), ("svc", 4, "2025-01-14 19:07:31"),
                            ("wu", 19, "2025-01-14 19:07:52")])
    s2 = BootSession(at("2025-01-15 03:00:55"), 2894, at("2025-04-10 02:59:30"), True)
    _update(s2, "2025-01", [("svc", 2, "2025-01-15 03:02:40")])  # finished during the boot
    _update(s2, "2025-02", [("wu", 44, "2025-02-12 09:14:03"), ("wu", 43, "2025-02-12 09:20:41"),
                            ("svc", 1, "2025-02-12 09:21:15"), ("svc", 2, "2025-02-12 09:26:02"),
                            ("wu", 19, "2025-02-12 09:26:18")])
    s2.events.append(W.image_load(  # the hotpatch image mapped beside the running kernel
        at("2025-02-12 09:26:19"), pid=4, base=0xFFFFF80612340000, size=0x5000,
        checksum=0x0001C2F5, timestamp=0x67A1B2C3, name=_patch_path("KB5052105")))
    s2.events.append(_applied("2025-02-12 09:26:20", "KB5052105"))
    _update(s2, "2025-03", [("wu", 44, "2025-03-12 09:02:11"), ("wu", 43, "2025-03-12 09:10:26"),
                            ("svc", 1, "2025-03-12 09:11:02"), ("svc", 3, "2025-03-12 09:15:31"),
                            ("wu", 20, "2025-03-12 09:15:47")], error_code=0x800F0922)
    _update(s2, "2025-03", [("wu", 43, "2025-03-13 09:05:02"), ("svc", 1, "2025-03-13 09:05:40"),
                            ("svc", 2, "2025-03-13 09:12:19"), ("wu", 19, "2025-03-13 09:12:35")])
    s2.events.append(_applied("2025-03-13 09:12:37", "KB5053636"))
    _update(s2, "2025-04", [("wu", 44, "2025-04-09 10:00:14"), ("wu", 43, "2025-04-09 10:21:09"),
                            ("svc", 1, "2025-04-09 10:21:44"), ("svc", 4, "2025-04-09 10:48:30"),
                            ("wu", 19, "2025-04-09 10:48:56")])
    s3 = BootSession(at("2025-04-10 03:01:20"), 3775, at("2025-04-22 16:30:00"), False)
    _update(s3, "2025-04", [("svc", 2, "2025-04-10 03:03:05")])
    sessions = [s1, s2, s3]
    for s in sessions:
        _weekly_noise(s)
        s.events.append(W.system_start(s.boot + BOOT_EVENT_DELAY, s.boot, OS_BUILD, s.qfe))
        if s.shutdown:
            s.events.append(W.system_stop(s.end))
        s.events.sort(key=lambda e: e.time)
    # installed: the first success record (client 19 or servicing 2); a baseline takes effect
    # at the boot after its reboot request, a hotpatch when installed
    months = {
        "2025-01": _month("2025-01", "2025-01-14T19:07:52Z", _iso(s2.boot + BOOT_EVENT_DELAY),
                          "baseline installed, effective after the restart of 15 January"),
        "2025-02": _month("2025-02", "2025-02-12T09:26:02Z", "2025-02-12T09:26:02Z",
                          "hotpatch installed without a restart"),
        "2025-03": _month("2025-03", "2025-03-13T09:12:19Z", "2025-03-13T09:12:19Z",
                          "hotpatch failed once (0x800f0922), installed the next day "
                          "without a restart", failures=1),
        "2025-04": _month("2025-04", "2025-04-09T10:48:56Z", _iso(s3.boot + BOOT_EVENT_DELAY),
                          "baseline installed, effective after the restart of 10 April"),
    }
    return sessions, months


def _month(month: str, installed: str, effective: str, why: str, failures: int = 0) -> dict:
    kind, kb, build = CALENDAR[month]
    return {"kind": kind, "expected_kb": kb, "installed_kb": kb, "build": f"{OS_BUILD}.{build}",
            "installed_at": installed, "effective_at": effective, "failures": failures,
            "reboot": kind != "hotpatch", "compliant": True, "why": why}


# What a correct timeline makes of each event (None: not an update-audit event).
_CATEGORIES = {(W.WUC, 44): "update-download", (W.WUC, 43): "update-start",
               (W.WUC, 19): "update-installed", (W.WUC, 20): "update-failed",
               (W.SERVICING, 1): "servicing-start", (W.SERVICING, 2): "servicing-success",
               (W.SERVICING, 3): "servicing-failure", (W.SERVICING, 4): "servicing-reboot-required",
               (W.KERNEL_GENERAL, 12): "boot", (W.KERNEL_GENERAL, 13): "shutdown"}


def _category(ev: EtwEvent) -> str | None:
    found = _CATEGORIES.get((ev.provider_name, ev.event_id))
    if found is None and any("hotpatch" in str(v).lower() for v in ev.values().values()):
        return "hotpatch-mention"
    return found


def session_for(s: BootSession, compression: int = 0) -> Session:
    return Session(LOGGER, "C:\\Windows\\System32\\LogFiles\\WMI\\" + s.file_name, s.boot,
                   s.boot + _dt.timedelta(seconds=4), s.end + _dt.timedelta(seconds=1),
                   compression=compression)


def build(out: Path, compress: bool = False) -> dict:
    """Write the trace files under `out`; the plan (with paths relative to `out`). With
    `compress`, the traces are LZNT1-compressed (record offsets in the plan are then those
    inside the decompressed buffers)."""
    sessions, months = scenario()
    files = []
    for s in sessions:
        rel = Path(DEVICE) / WMI_DIR / s.file_name
        writer = EtlWriter(session_for(s, COMPRESSION_FORMAT_LZNT1 if compress else 0))
        for ev in s.events:
            writer.add(ev)
        buffers = writer.layout()
        size = writer.write(out / rel)
        records = [{"record": i + 2, "buffer": buf, "offset": off, "size": length,
                    "provider": ev.provider_name,
                    "provider_guid": str(ev.provider), "event_id": ev.event_id,
                    "version": ev.version, "channel": ev.channel, "time": _iso(ev.time),
                    "category": _category(ev), "tracelogging": ev.event_name or None,
                    "data": {f.name: render(f.in_type, f.value) for f in ev.fields}}
                   for i, (ev, (buf, off, length))
                   in enumerate(zip(s.events, writer.placements()))]
        files.append({"path": rel.as_posix(), "logger": LOGGER, "bytes": size,
                      "buffer_size": writer.session.buffer_size, "buffers": len(buffers),
                      "boot": _iso(s.boot),
                      "records": len(s.events) + 1,  # + the logfile header record
                      "events": records})
    return {"device": DEVICE, "product": "windows11-24h2",
            **({"compression": "LZNT1"} if compress else {}),
            "note": "record numbers count every record of the file in order, the logfile header "
                    "being record 1; times are UTC",
            "files": files, "months": months}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "etl")
    ap.add_argument("--plan", type=Path, default=HERE / "etl-plan.json")
    ap.add_argument("--compress", action="store_true",
                    help="LZNT1-compressed buffers, as EVENT_TRACE_COMPRESSED_MODE writes them")
    args = ap.parse_args(argv)
    plan = build(args.out, args.compress)
    args.plan.write_text(json.dumps(plan, indent=1) + "\n")
    total = sum(f["bytes"] for f in plan["files"])
    print(f"{len(plan['files'])} trace files, {total} bytes, "
          f"{sum(f['records'] for f in plan['files'])} records -> {args.out}; plan {args.plan}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
