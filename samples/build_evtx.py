#!/usr/bin/env python3
"""Generate the sample fleet: Windows 11 24H2 devices' event logs, 2025-02 .. 2026-05.

    python samples/build_evtx.py [--out DIR] [--devices N] [--seed S]

One folder per device laid out like a triage collection
(<device>/C/Windows/System32/winevt/Logs/*.evtx), and fleet-plan.json: per device and month
what happened and the compliance verdict a correct timeline must reach. Output depends only
on the arguments (no clock, seeded randomness), so the committed files can be re-checked.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import random
import struct
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evtx_writer import EvtxWriter  # noqa: E402
from evtx_writer import windows as W  # noqa: E402
from evtx_writer.chunk import CHUNK_SIZE  # noqa: E402
from evtx_writer.fleet import CALENDAR, Device, next_month  # noqa: E402

MONTHS_FROM, MONTHS_TO = "2025-02", "2026-05"
LOG_FILES = {
    W.SYSTEM: "System.evtx",
    W.SETUP: "Setup.evtx",
    W.WUC_OPERATIONAL: "Microsoft-Windows-WindowsUpdateClient%4Operational.evtx",
    W.WAASMEDIC_OPERATIONAL: "Microsoft-Windows-WaaSMedic%4Operational.evtx",
}
LOG_DIR = Path("C/Windows/System32/winevt/Logs")
CORRUPT_DEVICE, CORRUPT_CHUNK = "HP-WS-007", 1

# (name, scenario, description, month -> action); the first six cover the required cases.
FLEET = [
    ("HP-WS-001", "compliant", "Enrolled, every baseline and hotpatch on time.", {}),
    ("HP-WS-002", "compliant", "Enrolled, on time; one power loss in June 2025 (not "
                               "update-related).", {}),
    ("HP-WS-003", "compliant", "Enrolled, on time; also took the March 2026 out-of-band hotpatch.",
     {"2026-03": "hotpatch+oob"}),
    ("HP-WS-004", "hotpatch-failed-fallback",
     "September 2025 hotpatch failed (WUC 20 + Servicing 3); fell back to the standard update with "
     "a restart.",
     {"2025-09": "hotpatch-fail-fallback"}),
    ("HP-WS-005", "manual-standard",
     "August 2025: standard update installed by hand; off the hotpatch track until the October "
     "baseline.",
     {"2025-08": "manual-standard", "2025-09": "standard"}),
    ("HP-WS-006", "missed-baseline",
     "October 2025 baseline failed; no hotpatches in November/December; rejoined with the January "
     "2026 baseline.",
     {"2025-10": "baseline-fail", "2025-11": "none", "2025-12": "none"}),
    (CORRUPT_DEVICE, "compliant-corrupt-log",
     f"Enrolled and on time, but chunk {CORRUPT_CHUNK} of its System.evtx has a broken header "
     "checksum.", {}),
]


# Scenario templates for devices beyond the named seven (--devices N > 7), drawn with the seed.
EXTRA = [("compliant", "Enrolled, on time.", {})] * 3 + [FLEET[3][1:], FLEET[4][1:], FLEET[5][1:]]


def fleet(n: int, seed: int) -> list[tuple[str, str, str, dict]]:
    rng = random.Random(seed)
    extra = [(f"HP-WS-{i + 1:03d}", *rng.choice(EXTRA)) for i in range(len(FLEET), n)]
    return (FLEET + extra)[:n]


def months() -> list[str]:
    out, m = [], MONTHS_FROM
    while m <= MONTHS_TO:
        out.append(m)
        m = next_month(m)
    return out


def write_device(dev: Device, root: Path, seed: int) -> dict:
    """Write the four logs; months' evidence events become (log, record id) references."""
    logs, where = {}, {}
    for channel, fname in LOG_FILES.items():
        events = sorted(dev.logs[channel], key=lambda e: e.time)
        path = root / dev.name / LOG_DIR / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        first = 1 + (zlib.crc32(f"{seed}/{dev.name}/{channel}".encode()) % 40000)
        # Collected from a running system: the header's dirty flag is set, as on a live copy.
        with EvtxWriter(path, first_record_id=first, dirty=True) as w:
            for ev in events:
                where[id(ev)] = (fname, w.add(ev))
        logs[fname] = {"path": str(path.relative_to(root)), "records": len(events),
                       "first_record_id": first, "last_record_id": first + len(events) - 1,
                       "chunks": (path.stat().st_size - 4096) // CHUNK_SIZE}
    for row in dev.months:
        row["evidence"] = [
            {"log": where[id(ev)][0], "record_id": where[id(ev)][1], "provider": ev.provider,
             "event_id": ev.event_id, "time": ev.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
            for ev in sorted(row["evidence"], key=lambda e: (e.time, where[id(e)]))]
    return logs


def break_chunk_checksum(path: Path, index: int) -> dict:
    """Flip the stored header CRC32 of chunk `index`; the records themselves stay intact."""
    data = bytearray(path.read_bytes())
    off = 4096 + index * CHUNK_SIZE
    if off + CHUNK_SIZE > len(data):
        raise SystemExit(f"{path} has no chunk {index}")
    crc = struct.unpack_from("<I", data, off + 0x7C)[0]
    struct.pack_into("<I", data, off + 0x7C, crc ^ 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    first, last = struct.unpack_from("<QQ", data, off + 24)
    return {"file": str(path), "chunk": index, "chunk_offset": off,
            "first_record_id": first, "last_record_id": last,
            "stored_header_crc32": f"0x{crc ^ 0xFFFFFFFF:08x}",
            "correct_header_crc32": f"0x{crc:08x}"}


def build(out: Path, n_devices: int, seed: int) -> dict:
    plan = {"generator": "samples/build_evtx.py", "seed": seed, "product": "windows11-24h2",
            "months": months(), "calendar": {m: {"kind": k, "kb": kb, "build": f"26100.{b}"}
                                             for m, (k, kb, b) in CALENDAR.items()
                                             if m in months()},
            "compliance_rule": ("compliant = the month's calendar KB (hotpatch KB in hotpatch "
                                "months, baseline KB in baseline months) installed between its "
                                "release and the next month's release; a standard update in a "
                                "hotpatch month is security-current but not hotpatch-compliant"),
            "devices": []}
    for i, (name, scenario, desc, actions) in enumerate(fleet(n_devices, seed)):
        dev = Device(name, scenario, desc, seed * 1000 + i, plan=dict(actions))
        dev.run(months())
        if name == "HP-WS-002":
            dev.unexpected_reboot(_dt.datetime(2025, 6, 24, 13, 41, 7, tzinfo=_dt.timezone.utc))
        logs = write_device(dev, out, seed)
        entry = {"device": name, "scenario": scenario, "description": desc, "enrolled": True,
                 "logs": logs, "months": dev.months, "other_reboots": dev.other_reboots}
        if name == CORRUPT_DEVICE:
            info = break_chunk_checksum(out / logs["System.evtx"]["path"], CORRUPT_CHUNK)
            info["file"] = logs["System.evtx"]["path"]
            entry["corrupt"] = info
        plan["devices"].append(entry)
    (out / "fleet-plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True) + "\n")
    return plan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "evtx")
    ap.add_argument("--devices", type=int, default=len(FLEET),
                    help=f"how many devices (default {len(FLEET)}; beyond that, scenarios drawn "
                         "with the seed)")
    ap.add_argument("--seed", type=int, default=2025)
    a = ap.parse_args(argv)
    if a.devices < 1:
        ap.error("--devices must be at least 1")
    a.out.mkdir(parents=True, exist_ok=True)
    plan = build(a.out, a.devices, a.seed)
    n = sum(lg["records"] for d in plan["devices"] for lg in d["logs"].values())
    print(f"{len(plan['devices'])} devices, {n} records -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
