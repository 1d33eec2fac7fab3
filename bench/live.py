"""Whole-host live scan: hpforensics against a straightforward pure-Python reader, same run.

The baseline does the same job the obvious way: parse /proc/PID/maps, and for each executable
file-backed mapping read the memory from /proc/PID/mem and the file at the mapping's offset,
and compare page by page in Python. hpforensics asks pagemap which pages can still differ,
reads only those, and compares with the C core. `--read-all` is shown too (every page read,
C comparison) to separate the two effects.

    .venv/bin/python bench/live.py [--rounds N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hpforensics.live.scan import ScanOptions  # noqa: E402
from hpforensics.model import Verdict  # noqa: E402
from hpforensics.live.space import scan_live, select_backend  # noqa: E402

PAGE = 4096


def baseline() -> dict[str, float]:
    """Pure Python: maps + mem + file, page compare in Python. Returns counts."""
    procs = pages = differ = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps") as fh:
                maps = fh.read().splitlines()
            mem = open(f"/proc/{entry}/mem", "rb", buffering=0)
        except OSError:
            continue
        procs += 1
        with mem:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                offset = int(parts[2], 16)
                try:
                    with open(parts[5].removesuffix(" (deleted)"), "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        length = min(hi - lo, max(0, -(-(size - offset) // PAGE) * PAGE))
                        for p in range(0, length, PAGE):
                            mem.seek(lo + p)
                            a = mem.read(PAGE)
                            f.seek(offset + p)
                            b = f.read(PAGE).ljust(PAGE, b"\0")
                            pages += 1
                            if a != b:
                                differ += 1
                except OSError:
                    continue
    return {"processes": procs, "pages": pages, "differ": differ}


def ours(read_all: bool) -> dict[str, float]:
    result = scan_live(select_backend(), options=ScanOptions(skip_unchanged=not read_all))
    ok = [p for p in result.processes if p.status == "ok"]
    return {
        "processes": len(ok),
        "pages": sum(p.pages_total for p in ok),
        "read": sum(p.pages_read for p in ok),
        "skipped": sum(p.pages_skipped for p in ok),
        "differ": sum(f.verdict is Verdict.UNEXPLAINED for f in result.findings),
    }


def measure(fns: dict[str, Callable[[], dict]],
            rounds: int) -> dict[str, tuple[float, float, dict]]:
    """Median wall and CPU (user+system: /proc reads are kernel time) seconds per reader.
    The readers alternate within each round so a busy neighbour slows them alike."""
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    last: dict[str, dict] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            last[name] = fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), last[k]) for k in fns}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    runs = measure({
        "pure-Python reader": baseline,
        "hpforensics live --read-all": lambda: ours(True),
        "hpforensics live": lambda: ours(False),
    }, args.rounds)
    t_base, c_base, r_base = runs["pure-Python reader"]
    rate_base = r_base["pages"] / t_base
    print(f"whole-host live scan, median of {args.rounds} interleaved rounds, "
          f"{os.cpu_count()} CPUs")
    print(f"{'reader':28} {'wall s':>7} {'cpu s':>7} {'procs':>6} {'procs/s':>8} {'pages':>7} "
          f"{'pages/s':>10} {'read':>7} {'skipped':>8} {'x wall':>7} {'x cpu':>6} "
          f"{'x pages/s':>9}")
    for name, (t, c, r) in runs.items():
        pages = r["pages"]
        read = r.get("read", pages)
        skipped = r.get("skipped", 0)
        print(f"{name:28} {t:7.3f} {c:7.3f} {r['processes']:6d} {r['processes'] / t:8.1f} "
              f"{pages:7d} {pages / t:10.0f} {read:7d} {skipped / max(pages, 1):8.1%} "
              f"{t_base / t:6.1f}x {c_base / c:5.1f}x {pages / t / rate_base:8.1f}x")
    print("x wall / x cpu: whole-host time against the baseline's; x pages/s: throughput, which"
          " stays fair when processes come and go between the interleaved runs")


if __name__ == "__main__":
    main()
