#!/usr/bin/env python3
"""Generate a synthetic fleet for scale tests: N devices x M months of Windows 11 24H2 logs.

    python samples/build_fleet.py --devices N --out DIR [--months 12] [--seed S] [--variants V]

Same device simulator and EVTX writer as samples/build_evtx.py, laid out the same way
(<device>/C/Windows/System32/winevt/Logs/*.evtx), built fast by reuse: V simulated devices per
scenario are written once ("variants", under placeholder computer names as long as the real
ones); every fleet device is a copy of a variant drawn with the seed, its computer name put in
place of the placeholder (UTF-16, same length) and each chunk's two CRC32s recomputed, so the
copies are valid logs of their own device. DIR/fleet-plan.csv lists, per device and month, the
scenario and the compliance status a correct timeline must reach. Output depends only on the
arguments.
"""
from __future__ import annotations

import argparse
import csv
import random
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_evtx import LOG_DIR, write_device  # noqa: E402
from evtx_writer.chunk import CHUNK_HEADER_SIZE, CHUNK_SIZE  # noqa: E402
from evtx_writer.fleet import CALENDAR, Device  # noqa: E402

LAST_MONTH = max(CALENDAR)
NAME = "HP-FL-{:05d}"  # fleet device names; placeholders below have the same length
PLACEHOLDER = "HPTPL{:06d}"
# (scenario, weight, month -> action); months outside the run are simply not reached.
SCENARIOS = [
    ("compliant", 12, {}),
    ("hotpatch-failed-fallback", 2, {"2025-09": "hotpatch-fail-fallback"}),
    ("manual-standard", 2, {"2025-08": "manual-standard", "2025-09": "standard"}),
    ("missed-baseline", 2, {"2025-10": "baseline-fail", "2025-11": "none", "2025-12": "none"}),
    ("out-of-band", 1, {"2026-03": "hotpatch+oob"}),
]
PLAN_COLUMNS = ["device", "scenario", "variant", "month", "status", "installed_kb"]


def run_months(count: int) -> list[str]:
    """The last `count` calendar months up to the newest one the simulator knows."""
    months = sorted(CALENDAR)
    if not 1 <= count < len(months):
        raise SystemExit(f"--months must be 1..{len(months) - 1}")
    return months[-count:]


def _start_build(first_month: str) -> int:
    """A device starts on the last baseline before the run, as a managed device would."""
    before = [m for m in sorted(CALENDAR) if m < first_month and CALENDAR[m][0] == "baseline"]
    return CALENDAR[before[-1]][2]


def build_variants(months: list[str], per_scenario: int, seed: int, tmp: Path) -> list[dict]:
    """Each variant: scenario, placeholder name, {relative path: file bytes}, month rows."""
    variants = []
    for s_index, (scenario, _, plan) in enumerate(SCENARIOS):
        for k in range(per_scenario):
            v = len(variants)
            name = PLACEHOLDER.format(v)
            dev = Device(name, scenario, scenario, seed * 1000 + s_index * 100 + k,
                         plan=dict(plan), qfe=_start_build(months[0]))
            dev.run(months)
            logs = write_device(dev, tmp, seed)
            files = {info["path"].split("/", 1)[1]: (tmp / info["path"]).read_bytes()
                     for info in logs.values()}
            rows = [(m["month"], m["status"], m["installed_kb"] or "") for m in dev.months]
            variants.append({"scenario": scenario, "name": name, "files": files, "rows": rows})
    return variants


def stamp(data: bytes, old: str, new: str) -> bytes:
    """The log with computer name `old` replaced by `new` (UTF-16LE, same length) and every
    chunk's record-data and header CRC32 made right again."""
    a, b = old.encode("utf-16-le"), new.encode("utf-16-le")
    if len(a) != len(b):
        raise ValueError("names must have the same length")
    buf = bytearray(data.replace(a, b))
    for off in range(4096, len(buf), CHUNK_SIZE):
        free = struct.unpack_from("<I", buf, off + 0x30)[0]
        struct.pack_into("<I", buf, off + 0x34, zlib.crc32(buf[off + CHUNK_HEADER_SIZE:off + free]))
        crc = zlib.crc32(bytes(buf[off:off + 0x78])
                         + bytes(buf[off + 0x80:off + CHUNK_HEADER_SIZE]))
        struct.pack_into("<I", buf, off + 0x7C, crc)
    return bytes(buf)


def build(out: Path, devices: int, months: list[str], seed: int, per_scenario: int) -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpf-fleet-") as tmp:
        variants = build_variants(months, per_scenario, seed, Path(tmp))
    t1 = time.perf_counter()
    rng = random.Random(seed)
    weights = [w for _, w, _ in SCENARIOS]
    size = 0
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "fleet-plan.csv", "w", newline="", encoding="utf-8") as fh:
        plan = csv.writer(fh, lineterminator="\n")
        plan.writerow(PLAN_COLUMNS)
        for i in range(1, devices + 1):
            s_index = rng.choices(range(len(SCENARIOS)), weights)[0]
            v = s_index * per_scenario + rng.randrange(per_scenario)
            var, name = variants[v], NAME.format(i)
            logdir = out / name / LOG_DIR
            logdir.mkdir(parents=True, exist_ok=True)
            for rel, data in var["files"].items():
                blob = stamp(data, var["name"], name)
                (out / name / rel).write_bytes(blob)
                size += len(blob)
            plan.writerows([name, var["scenario"], v, *row] for row in var["rows"])
    t2 = time.perf_counter()
    return {"devices": devices, "months": len(months), "variants": len(variants),
            "bytes": size, "variants_s": t1 - t0, "copies_s": t2 - t1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--months", type=int, default=12,
                    help="months up to %s (default 12)" % LAST_MONTH)
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--variants", type=int, default=8, help="simulated devices per scenario")
    a = ap.parse_args(argv)
    if not 1 <= a.devices <= 99_999:
        ap.error("--devices must be 1..99999")
    if a.variants < 1:
        ap.error("--variants must be at least 1")
    info = build(a.out, a.devices, run_months(a.months), a.seed, a.variants)
    print(f"{info['devices']} devices x {info['months']} months, {info['bytes'] / 1e6:.1f} MB "
          f"-> {a.out} ({info['variants']} variants in {info['variants_s']:.1f} s, copies in "
          f"{info['copies_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
