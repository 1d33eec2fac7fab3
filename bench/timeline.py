"""Events/s from EVTX to compliance.csv: `hpforensics timeline` with 1 and 2 processes against
the floor (raw iteration of the Rust `evtx` records, one thread, nothing else) and python-evtx on
a subset, side by side on the same inputs.

Two corpora of about HPF_BENCH_MB megabytes each (default 150) in a temporary folder:
- real: copies of system.evtx, security.evtx and plaso-System.evtx from ../shared/data/evtx
  (about 6 % of records matter for compliance, as in real System/Security logs);
- fleet: copies of the sample fleet (samples/evtx), where most records are update events.
Wall time on a shared machine is noisy, so CPU seconds (process plus children) are shown too.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HPF_SHARED_DATA", REPO.parent / "shared" / "data")) / "evtx"
TARGET_MB = int(os.environ.get("HPF_BENCH_MB", "150"))


def build_corpus(root: Path, sources: list[Path], base: Path) -> list[Path]:
    files, total, i = [], 0, 0
    while total < TARGET_MB << 20:
        for src in sources:
            dst = root / f"copy{i:03d}" / src.relative_to(base)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            files.append(dst)
            total += dst.stat().st_size
        i += 1
    return files


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def raw_floor(files: list[Path]) -> tuple[int, float, float]:
    from evtx import PyEvtxParser

    start, cpu, n = time.perf_counter(), _cpu(), 0
    for f in files:
        it = PyEvtxParser(str(f), number_of_threads=1).records_json()
        while True:
            try:
                for _ in it:
                    n += 1
                break
            except RuntimeError:
                continue
    return n, time.perf_counter() - start, _cpu() - cpu


def ours(corpus: Path, jobs: int, out: Path) -> tuple[float, float, float]:
    start, cpu = time.perf_counter(), _cpu()
    proc = subprocess.run([sys.executable, "-m", "hpforensics", "timeline", str(corpus), "-o",
                           str(out), "--no-hash", "--jobs", str(jobs)],
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(proc.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return took, _cpu() - cpu, peak


def python_evtx(path: Path) -> tuple[int, float, float]:
    import Evtx.Evtx as pyevtx

    start, cpu = time.perf_counter(), _cpu()
    with pyevtx.Evtx(str(path)) as log:
        n = sum(1 for r in log.records() if r.xml())
    return n, time.perf_counter() - start, _cpu() - cpu


def run(name: str, corpus: Path, files: list[Path], tmp: Path) -> None:
    size = sum(f.stat().st_size for f in files) / 1e6
    raw_floor(files[:10])  # warm the page cache
    n, raw_s, raw_c = raw_floor(files)
    rows = [("raw evtx records_json, 1 thread", n, raw_s, raw_c, None)]
    for jobs in (1, 2):
        took, cpu, peak = ours(corpus, jobs, tmp / f"out-{name}-{jobs}")
        rows.append((f"hpforensics timeline --jobs {jobs}", n, took, cpu, peak))
    print(f"\n{name}: {len(files)} files, {size:.0f} MB, {n} records")
    print(f"{'what':36} {'wall s':>7} {'rec/s':>9} {'x raw':>6} {'cpu s':>7} {'x raw cpu':>9} "
          f"{'peak MB':>8}")
    for what, count, secs, cpu, peak in rows:
        print(f"{what:36} {secs:7.2f} {count / secs:9.0f} {raw_s / secs:6.2f} {cpu:7.2f} "
              f"{raw_c / cpu:9.2f} {'' if peak is None else f'{peak:8.0f}'}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hpf-bench-") as tmp_name:
        tmp = Path(tmp_name)
        real = [SHARED / n for n in ("system.evtx", "security.evtx", "plaso-System.evtx")]
        run("real logs", tmp / "real", build_corpus(tmp / "real", real, SHARED), tmp)
        fleet_dir = REPO / "samples" / "evtx"
        fleet = sorted(fleet_dir.rglob("*.evtx"))
        run("sample fleet", tmp / "fleet", build_corpus(tmp / "fleet", fleet, fleet_dir), tmp)
        pn, ps, pc = python_evtx(SHARED / "system.evtx")
        print(f"\npython-evtx on system.evtx: {pn} records (of 1881) in {ps:.2f} s wall, "
              f"{pc:.2f} s cpu = {pn / ps:.0f} rec/s")


if __name__ == "__main__":
    main()
