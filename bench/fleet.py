"""Fleet scale: devices/s of `hpforensics timeline` on a local Dask cluster with 1 and 2 worker
processes, beside the single-process pipeline on the same synthetic fleet, and the driver's
peak memory (it must stay flat as the fleet grows: workers return summaries, not events).

    python bench/fleet.py [--sizes 1000,10000] [--months 12] [--large-months 12]
                          [--cache /tmp/hpf-fleet-bench] [--skip-single-above 2000]

Fleets are generated once with samples/build_fleet.py into the cache folder and reused. Each
measurement runs in its own process so `ru_maxrss` is that run's driver peak; the cluster start
is timed apart from the work. The machine's load average is printed with every row: on a
shared machine the 2-worker ratio means little when the load exceeds the free cores, so the
workers' CPU milliseconds per device are shown too (flat across 1 and 2 workers means the
work divides without overhead; the wall-clock ratio then follows the free cores).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fleet_dir(cache: Path, devices: int, months: int) -> tuple[Path, float | None]:
    """The cached fleet, generated when missing; returns (folder, seconds spent generating)."""
    target = cache / f"fleet-{devices}-m{months}"
    if (target / "fleet-plan.csv").exists():
        return target, None
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "samples" / "build_fleet.py"), "--devices",
                    str(devices), "--months", str(months), "--out", str(target)], check=True)
    return target, time.perf_counter() - start


def _cpu_seconds() -> float:
    """CPU seconds of the calling process (run on each worker by client.run)."""
    import resource as r

    me = r.getrusage(r.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def one(mode: str, fleet: Path) -> dict:
    """Runs in a child process: one measurement, printed as JSON."""
    from hpforensics.timeline.pipeline import TimelineOptions
    from hpforensics.runs.timeline import run_timeline

    opts = TimelineOptions(hash_inputs=False)
    out = Path(tempfile.mkdtemp(prefix="hpf-fleet-out-"))
    info: dict = {"mode": mode}
    try:
        if mode == "single":
            start, cpu0 = time.perf_counter(), _cpu_seconds()
            res = run_timeline([fleet], out, opts, html=False)
            info.update(wall=time.perf_counter() - start, devices=len(res.devices),
                        worker_cpu=_cpu_seconds() - cpu0)
        else:
            from hpforensics.fleet.cluster import ClusterSpec, open_client
            from hpforensics.fleet.timeline import run_fleet_timeline

            workers = int(mode.removeprefix("workers"))
            spec = ClusterSpec(workers=workers)
            t0 = time.perf_counter()
            with open_client(spec) as client:
                client.wait_for_workers(workers)
                client.run(lambda: __import__("hpforensics.fleet.timeline"))  # warm imports
                cpu0 = sum(client.run(_cpu_seconds).values())
                t1 = time.perf_counter()
                res = run_fleet_timeline([fleet], out, opts, spec, html=False, client=client,
                                         show_progress=False)
                t2 = time.perf_counter()
                worker_cpu = sum(client.run(_cpu_seconds).values()) - cpu0
            info.update(wall=t2 - t1, start=t1 - t0, devices=res.devices,
                        failures=len(res.failures), worker_cpu=worker_cpu)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    me = resource.getrusage(resource.RUSAGE_SELF)
    info["driver_peak_mb"] = me.ru_maxrss / 1024
    info["driver_cpu"] = me.ru_utime + me.ru_stime
    return info


def measure(mode: str, fleet: Path) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--one", mode, str(fleet)],
                          capture_output=True, text=True, check=True)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info["load"] = (load + os.getloadavg()[0]) / 2
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--large-months", type=int, default=None,
                    help="months for fleets above 1000 devices (default: --months)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hpf-fleet-bench")
    ap.add_argument("--skip-single-above", type=int, default=2000)
    ap.add_argument("--one", nargs=2, metavar=("MODE", "FLEET"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.one[0], Path(a.one[1]))))
        return 0
    a.cache.mkdir(parents=True, exist_ok=True)
    print(f"cpus {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}")
    header = (f"{'devices':>8} {'months':>6} {'mode':>9} {'start s':>8} {'work s':>8} "
              f"{'dev/s':>7} {'vs 1 wkr':>8} {'eff':>5} {'cpu ms/dev':>10} {'driver MB':>9} "
              f"{'drv cpu':>7} {'load':>5}")
    rows = []
    for size in (int(s) for s in a.sizes.split(",")):
        months = a.large_months if (a.large_months and size > 1000) else a.months
        fleet, gen = fleet_dir(a.cache, size, months)
        if gen is not None:
            print(f"generated {size} devices x {months} months in {gen:.1f} s")
        modes = ["workers1", "workers2"] + (["single"] if size <= a.skip_single_above else [])
        base = None
        for mode in modes:
            r = measure(mode, fleet)
            rate = r["devices"] / r["wall"]
            if mode == "workers1":
                base = rate
            ratio = rate / base if base else 0.0
            n = int(mode.removeprefix("workers")) if mode.startswith("workers") else 1
            rows.append(f"{size:>8} {months:>6} {mode:>9} {r.get('start', 0):>8.1f} "
                        f"{r['wall']:>8.1f} {rate:>7.1f} {ratio:>7.2f}x {ratio / n:>5.2f} "
                        f"{1000 * r.get('worker_cpu', 0) / r['devices']:>10.1f} "
                        f"{r['driver_peak_mb']:>9.0f} {r['driver_cpu']:>7.1f} {r['load']:>5.2f}")
            print(header if len(rows) == 1 else "", end="\n" if len(rows) == 1 else "")
            print(rows[-1], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
