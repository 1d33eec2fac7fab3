"""Write speed of samples/evtx_writer, side by side with reading the same file back.

Writes a synthetic fleet-like mix (WindowsUpdateClient 44/43/19, Servicing 1/2, Service
Control Manager 7036, Kernel-General 12) to one .evtx, then reads it with the two public
parsers on the same file in the same run: the Rust-backed evtx package and python-evtx (the
latter on the first 5,000 records only, extrapolated: it is far slower). Ratios are against our
write.

    .venv/bin/python bench/evtx_writer.py [--records N] [--rounds R]
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "samples"))

import Evtx.Evtx as PyEvtx  # noqa: E402
from evtx import PyEvtxParser  # noqa: E402

from evtx_writer import EvtxWriter  # noqa: E402
from evtx_writer import windows as W  # noqa: E402


def events(n: int) -> list:
    t0 = dt.datetime(2025, 2, 1, tzinfo=dt.timezone.utc)
    out = []
    for i in range(n):
        t = t0 + dt.timedelta(seconds=17 * i)
        k = i % 6
        if k < 3:
            out.append(W.wuc((44, 43, 19)[k], t, "HP-WS-001", update_id=uuid.UUID(int=i // 3),
                             title=f"2025-02 Security Hotpatch Update for Windows 11 Version 24H2 "
                                   f"for x64-based Systems (KB{5052105 + i // 3}) (26100.3107)",
                             revision=1, pid=1400, tid=i % 9000))
        elif k == 3:
            out.append(W.servicing(1 + i % 2, t, "HP-WS-001", package=f"KB{5052105 + i // 6}"))
        elif k == 4:
            out.append(W.scm_state(t, "HP-WS-001", "Windows Modules Installer", "running",
                                   "TrustedInstaller"))
        else:
            out.append(W.kernel_boot(t, "HP-WS-001", 26100, 3107))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    evs = events(a.records)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.evtx"
        write, rust, py = [], [], []
        for _ in range(a.rounds):
            s = time.perf_counter()
            with EvtxWriter(path) as w:
                w.extend(evs)
            write.append(time.perf_counter() - s)
            s = time.perf_counter()
            n = sum(1 for _ in PyEvtxParser(str(path), 1).records())
            rust.append(time.perf_counter() - s)
            assert n == a.records
            s = time.perf_counter()
            with PyEvtx.Evtx(str(path)) as f:
                m = sum(1 for r in islice(f.records(), 5000) if r.xml())
            py.append((time.perf_counter() - s) * a.records / m)
        size = path.stat().st_size
    w, r, p = (statistics.median(x) for x in (write, rust, py))
    print(f"{a.records:,} records, {size / 1e6:.1f} MB, median of {a.rounds} rounds")
    print(f"{'step':<34}{'seconds':>10}{'records/s':>12}{'MB/s':>8}{'vs write':>10}")
    for name, sec in (("evtx_writer write", w), ("evtx crate read (1 thread)", r),
                      ("python-evtx read (extrapolated)", p)):
        print(f"{name:<34}{sec:>10.2f}{a.records / sec:>12,.0f}{size / 1e6 / sec:>8.1f}"
              f"{sec / w:>10.2f}")


if __name__ == "__main__":
    main()
