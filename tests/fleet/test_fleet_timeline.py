"""`hpforensics timeline` on Dask: the same outputs as a single process, per-device Parquet,
failures isolated and retried once, progress fed from the cluster."""
from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import cloudpickle

from hpforensics.timeline.pipeline import TimelineOptions
from hpforensics.fleet.cluster import ClusterSpec, Task, run_tasks
from hpforensics.fleet.timeline import partitions, run_fleet_timeline, timeline_task

ROLLUPS = ["events", "timeline", "updates", "compliance", "devices", "inputs", "summary",
           "summary-devices", "memory"]
SAMPLE_FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"


def sorted_lines(path: Path) -> list[str]:
    return sorted(path.read_text(encoding="utf-8").splitlines())


def assert_same_outputs(a: Path, b: Path) -> None:
    for name in ROLLUPS:
        for ext in ("csv", "jsonl"):
            left, right = a / f"{name}.{ext}", b / f"{name}.{ext}"
            if ext == "csv":  # same header first
                assert left.read_text().splitlines()[:1] == right.read_text().splitlines()[:1]
            assert sorted_lines(left) == sorted_lines(right), f"{name}.{ext} differs"


def test_partitions_split_a_fleet_folder_per_device(small_fleet, tmp_path):
    parts = partitions([small_fleet])
    assert [Path(p).name for p in parts] == sorted(p.name for p in small_fleet.iterdir()
                                                   if p.is_dir())
    one = small_fleet / "HP-FL-00001"
    assert partitions([one]) == [str(one)]  # a device's own collection is one task
    logs = one / "C" / "Windows" / "System32" / "winevt" / "Logs"
    assert partitions([logs]) == [str(logs)]
    assert partitions([logs / "System.evtx"]) == [str(logs / "System.evtx")]


def test_three_modes_give_the_same_outputs(cli, fleet_client, tmp_path):
    """Single process and the CLI on the LocalCluster that `--workers 2` starts (reached as a
    running scheduler, so one cluster start serves every test): byte for byte after sorting."""
    assert sorted(fleet_client.nthreads().values()) == [1, 1]  # 2 processes x 1 thread
    single, fleet = tmp_path / "single", tmp_path / "fleet"
    rings = tmp_path / "rings.csv"
    rings.write_text("device,ring\nHP-WS-001,Ring1\nHP-WS-005,Ring2\n")
    findings = tmp_path / "f.json"
    findings.write_text('[{"source": "dump:x", "verdict": "hotpatch", "kb": "KB5089466"}]')
    extra = ["--rings", rings, "--findings", f"HP-WS-003={findings}"]
    p1 = cli("timeline", SAMPLE_FLEET, "-o", single, *extra)
    p2 = cli("timeline", SAMPLE_FLEET, "-o", fleet, "--scheduler", fleet_client.scheduler.address,
             *extra)
    # HP-WS-007's System.evtx has a broken chunk header: partial (3) in both modes
    assert (p1.returncode, p2.returncode) == (3, 3), p2.stderr
    assert "8 partition(s), 29 input(s), 2797 records" in p2.stdout and "7 device(s)" in p2.stdout
    assert "chunk header checksum mismatch" in p2.stderr and "Traceback" not in p2.stderr
    assert_same_outputs(single, fleet)
    assert (fleet / "failures.csv").read_text().splitlines() == ["task,kind,attempts,error,detail"]
    assert not (fleet / ".fleet-parts").exists()
    assert (fleet / "custody.json").is_file()
    report = (fleet / "report.html").read_text()
    assert report.count("<tr><th>HP-WS-") == 7  # one compliance-grid row per device
    assert "Ring2" in (fleet / "summary.csv").read_text() and "id='memory-table'" in report


def test_parquet_partitions_hold_every_row(fleet_client, small_fleet, tmp_path):
    import pyarrow.dataset as ds

    out = tmp_path / "out"
    res = run_fleet_timeline([small_fleet], out, TimelineOptions(), ClusterSpec(workers=2),
                             client=fleet_client, show_progress=False)
    assert (res.devices, res.partitions, res.failures, res.warnings) == (10, 10, [], [])
    devices = {p.name for p in small_fleet.iterdir() if p.is_dir()}
    for table in ("events", "updates", "compliance", "devices"):
        parts = sorted(p.name for p in (out / "parquet" / table).iterdir())
        assert parts == sorted(f"device={d}" for d in devices)
        data = ds.dataset(out / "parquet" / table, format="parquet", partitioning="hive").to_table()
        with open(out / f"{table}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert data.num_rows == len(rows)
        assert sorted(data.column("device").to_pylist()) == sorted(r["device"] for r in rows)
    comp = ds.dataset(out / "parquet" / "compliance", format="parquet",
                      partitioning="hive").to_table().to_pylist()
    assert str(ds.dataset(out / "parquet" / "events", format="parquet").schema.field(
        "time").type) == "timestamp[us, tz=UTC]"
    # the verdicts are the simulator's truth (fleet-plan.csv)
    with open(small_fleet / "fleet-plan.csv", newline="") as fh:
        plan = {(r["device"], r["month"]): r["status"] for r in csv.DictReader(fh)}
    assert {(r["device"], r["month"]): r["status"] for r in comp} == plan


# -- failures: a device whose folder makes the worker raise, another that kills its worker ---

def faulty_task(parts: list[str], outdir: str, opts, part_id: str):
    """The real task, except for devices whose folder holds a RAISE or EXIT marker."""
    for folder in map(Path, parts):
        for marker in ("RAISE", "EXIT"):
            if (folder / marker).exists():
                with open(folder / "attempts.log", "a") as fh:
                    fh.write(f"{os.getpid()} {len(parts)}\n")
                if marker == "EXIT":
                    os._exit(13)
                raise RuntimeError(f"bad input in {folder.name}")
    return timeline_task(parts, outdir, opts, part_id)


def test_failed_devices_are_retried_once_and_listed(fleet_client, small_fleet, tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    fleet = tmp_path / "fleet"
    shutil.copytree(small_fleet, fleet)
    (fleet / "HP-FL-00002" / "RAISE").touch()
    (fleet / "HP-FL-00005" / "EXIT").touch()
    progress: list[tuple[int, int]] = []
    out = tmp_path / "out"
    import hpforensics.fleet.timeline as FT

    real = FT.progress_bar
    try:
        FT.progress_bar = lambda what, total, enabled=True: _recorder(progress)
        res = run_fleet_timeline([fleet], out, TimelineOptions(), ClusterSpec(workers=2),
                                 client=fleet_client, show_progress=False, task_fn=faulty_task,
                                 batch=4)
    finally:
        FT.progress_bar = real
    assert res.partial and res.devices == 8
    by_task = {Path(f.key).name: f for f in res.failures}
    assert set(by_task) == {"HP-FL-00002", "HP-FL-00005"}
    assert by_task["HP-FL-00002"].kind == "exception"
    assert "RuntimeError: bad input in HP-FL-00002" in by_task["HP-FL-00002"].error
    assert by_task["HP-FL-00005"].kind == "worker-died"
    # in its batch of 4: run, retried; then alone: run, retried
    for name in by_task:
        sizes = [line.split()[1]
                 for line in (fleet / name / "attempts.log").read_text().splitlines()]
        assert sizes == ["4", "4", "1", "1"], (name, sizes)
    with open(out / "failures.csv", newline="") as fh:
        rows = {Path(r["task"]).name: r for r in csv.DictReader(fh)}
    assert set(rows) == set(by_task) and rows["HP-FL-00005"]["kind"] == "worker-died"
    assert [rows[n]["attempts"] for n in sorted(rows)] == ["2", "2"]  # of the device alone
    with open(out / "devices.csv", newline="") as fh:
        done = {r["device"] for r in csv.DictReader(fh)}
    assert done == {f"HP-FL-{i:05d}" for i in range(1, 11)} - set(by_task)
    # devices done / total, rising as tasks land (a batch of 2, then devices one by one)
    done = [d for d, _ in progress]
    assert progress[-1] == (10, 10) and done == sorted(set(done)) and len(done) >= 6
    # every other device's rows are exactly those of a clean single-process run
    good = tmp_path / "good"
    shutil.copytree(small_fleet, good)
    for name in by_task:
        shutil.rmtree(good / name)
    from hpforensics.runs.timeline import run_timeline

    ref = tmp_path / "ref"
    run_timeline([good], ref, TimelineOptions(), html=False)
    for table in ("compliance", "updates", "devices"):
        assert sorted_lines(ref / f"{table}.csv") == sorted_lines(out / f"{table}.csv")


class _recorder:
    def __init__(self, sink: list) -> None:
        self.sink = sink

    def __enter__(self):
        return lambda done, total: self.sink.append((done, total))

    def __exit__(self, *exc) -> None:
        pass


def test_run_tasks_in_process_retries_once_and_reports():
    calls: list[str] = []

    def flaky(name: str) -> str:
        calls.append(name)
        if name == "bad" or calls.count(name) == 1 and name == "once":
            raise ValueError(f"no {name}")
        return name.upper()

    got, failed = [], []
    run_tasks(None, [Task(n, flaky, (n,)) for n in ("a", "once", "bad")], 3,
              lambda t, r: got.append(r), lambda t, f: failed.append(f))
    assert got == ["A", "ONCE"]
    assert [(f.key, f.kind, f.attempts, f.error) for f in failed] == [
        ("bad", "exception", 2, "ValueError: no bad")]
    assert calls == ["a", "once", "once", "bad", "bad"]


def test_cli_rejects_both_cluster_options(cli, tmp_path):
    proc = cli("timeline", SAMPLE_FLEET, "-o", tmp_path, "--workers", "2", "--scheduler",
               "tcp://x:1")
    assert proc.returncode == 2 and "exclusive" in proc.stderr and "Traceback" not in proc.stderr
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    proc = cli("timeline", SAMPLE_FLEET, "-o", tmp_path, "--scheduler", "tcp://127.0.0.1:9",
               env=env)
    assert proc.returncode == 2 and "cannot reach the Dask scheduler" in proc.stderr
