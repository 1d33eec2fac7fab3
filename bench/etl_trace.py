"""Reading an ETW trace: hpforensics' read_etl beside dissect.etl and etl-parser, same file.

Writes one trace with samples/etl_writer (64 KiB buffers; 1 in 10 events a Windows Update
Client 19 with SID/TS_ID items, the rest Kernel-Process image loads that do not matter), then
times, in CPU seconds on the same file in the same run:
- dissect.etl: every record's header and timestamp (its own field decoding cannot read these
  providers, see docs/timeline.md), the floor our reader builds on;
- etl-parser: every record's header and payload bytes (no field decoding);
- read_etl, default (records that can matter decoded) and relevant_only=False (all decoded).

    .venv/bin/python bench/etl_trace.py [--events N] [--rounds R]
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "samples"))

from dissect.etl import ETL  # noqa: E402
from etl.etl import IEtlFileObserver, build_from_stream  # noqa: E402

from etl_writer import EtlWriter, Session  # noqa: E402
from etl_writer import windows as W  # noqa: E402
from hpforensics.evtx.exports import read_etl  # noqa: E402
from hpforensics.evtx.records import ReadStats  # noqa: E402


def write_trace(path: Path, n: int) -> int:
    boot = dt.datetime(2025, 2, 1, tzinfo=dt.timezone.utc)
    w = EtlWriter(Session("Bench", r"C:\bench.etl", boot, boot + dt.timedelta(seconds=1),
                          boot + dt.timedelta(seconds=n + 10), buffer_size=65536))
    for i in range(n):
        when = boot + dt.timedelta(seconds=2 + i)
        if i % 10 == 0:
            w.add(W.wuc(19, when, title="2025-02 Security Hotpatch Update for Windows 11 "
                        "Version 24H2 for x64-based Systems (KB5052105) (26100.3107)",
                        update_id=uuid.UUID(int=i), revision=1, pid=3120))
        else:
            w.add(W.image_load(when, pid=4712, name=r"\Device\HarddiskVolume3\Windows"
                               rf"\System32\lib{i % 97}.dll", base=0x7FF800000000,
                               size=0x20000, checksum=i, timestamp=0x60000000))
    return w.write(path)


def dissect_headers(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for rec in ETL(fh):
            rec.header.timestamp
            n += 1
    return n


def etl_parser_records(path: Path) -> int:
    count = [0]

    class Count(IEtlFileObserver):
        def on_event_record(self, event) -> None:
            count[0] += 1

        def on_trace_record(self, event) -> None: ...
        def on_perfinfo_trace(self, obj) -> None: ...
        def on_system_trace(self, obj) -> None: ...
        def on_win_trace(self, obj) -> None: ...

    build_from_stream(path.read_bytes()).parse(Count())
    return count[0]


def ours(path: Path, relevant_only: bool) -> int:
    stats = ReadStats(str(path))
    return sum(1 for _ in read_etl(str(path), stats, relevant_only=relevant_only))


def cpu(fn, rounds: int) -> tuple[float, int]:
    times, out = [], 0
    for _ in range(rounds):
        t = time.process_time()
        out = fn()
        times.append(time.process_time() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.etl"
        size = write_trace(path, args.events)
        runs = [("dissect.etl headers + time", lambda: dissect_headers(path)),
                ("etl-parser records", lambda: etl_parser_records(path)),
                ("read_etl (relevant only)", lambda: ours(path, True)),
                ("read_etl (all decoded)", lambda: ours(path, False))]
        results = [(name, *cpu(fn, args.rounds)) for name, fn in runs]
    floor = results[0][1]
    print(f"{args.events:,} events, {size / 1e6:.1f} MB, CPU s (median of {args.rounds})")
    print(f"{'reader':32} {'cpu s':>8} {'records':>9} {'x dissect':>10} {'rec/s':>10}")
    for name, secs, n in results:
        print(f"{name:32} {secs:8.2f} {n:9,} {secs / floor:10.2f} {args.events / secs:10,.0f}")


if __name__ == "__main__":
    main()
