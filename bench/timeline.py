"""Events/s from EVTX to compliance.csv: hpforensics timeline with 1 and 2 processes against the
floor (raw iteration of the Rust `evtx` records, one thread) and python-evtx on a subset.

Input: copies of the sample fleet and of the real logs in ../shared/data/evtx, about
HPF_BENCH_MB megabytes (default 300) in a temporary folder. Prints a small table.
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
TARGET_MB = int(os.environ.get("HPF_BENCH_MB", "300"))


def build_corpus(root: Path) -> list[Path]:
    sources = sorted((REPO / "samples" / "evtx").rglob("*.evtx"))
    sources += [SHARED / n for n in ("system.evtx", "security.evtx", "plaso-System.evtx")]
    files, total, i = [], 0, 0
    while total < TARGET_MB << 20:
        for src in sources:
            dst = root / f"copy{i:03d}" / src.relative_to(src.parents[len(src.parents) - 1]).as_posix().replace("/", "_")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            files.append(dst)
            total += dst.stat().st_size
        i += 1
    return files


def raw_floor(files: list[Path]) -> tuple[int, float]:
    from evtx import PyEvtxParser

    start = time.perf_counter()
    n = 0
    for f in files:
        it = PyEvtxParser(str(f), number_of_threads=1).records_json()
        while True:
            try:
                for _ in it:
                    n += 1
                break
            except RuntimeError:
                continue
    return n, time.perf_counter() - start


def ours(corpus: Path, jobs: int, out: Path) -> tuple[float, float]:
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-m", "hpforensics", "timeline", str(corpus), "-o",
                           str(out), "--no-hash", "--jobs", str(jobs)],
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(proc.stderr)
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    return took, peak


def python_evtx(path: Path) -> tuple[int, float]:
    import Evtx.Evtx as pyevtx

    start = time.perf_counter()
    with pyevtx.Evtx(str(path)) as log:
        n = sum(1 for r in log.records() if r.xml())
    return n, time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hpf-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        files = build_corpus(corpus)
        size = sum(f.stat().st_size for f in files) / 1e6
        n, raw_s = raw_floor(files)
        raw_floor(files[:20])  # warm
        n, raw_s = raw_floor(files)
        rows = [("raw evtx records_json (1 thread)", n, raw_s, None)]
        for jobs in (1, 2):
            took, peak = ours(corpus, jobs, Path(tmp) / f"out{jobs}")
            rows.append((f"hpforensics timeline --jobs {jobs}", n, took, peak))
        pn, ps = python_evtx(SHARED / "security.evtx")
        rows.append(("python-evtx (security.evtx only)", pn, ps, None))
        print(f"input: {len(files)} files, {size:.0f} MB, {n} records")
        print(f"{'what':40} {'records':>9} {'seconds':>8} {'rec/s':>10} {'x raw':>6} {'peak MB':>8}")
        for what, count, secs, peak in rows:
            rate = count / secs
            print(f"{what:40} {count:9d} {secs:8.2f} {rate:10.0f} {rate / (n / raw_s):6.2f} "
                  f"{'' if peak is None else f'{peak:8.0f}'}")


if __name__ == "__main__":
    main()
