"""`hpforensics timeline` over a fleet: one task per device folder (or per loose file / zip).

Each task runs where Dask puts it: it discovers its own files, reads and judges them with the
same code as the single-process pipeline (`hpforensics.timeline.pipeline`), writes its rows as CSV
and JSONL pieces plus Parquet partitions under `<out>/.fleet-parts/<task>/`, and returns a small
summary (counts, warnings, the device's months and update lifecycles; never its events). The
driver appends each piece to the roll-ups (events, timeline, updates, compliance, devices,
inputs: the same files, the same lines as a single-process run, in completion order), moves the
Parquet files into `<out>/parquet/<table>/device=<name>/`, and forgets the piece. Output
folder and inputs must therefore be on storage the workers and the driver share.

A folder given on the command line is split into its entries (one device each, as a fleet
collection is laid out), unless it is itself one device's collection (it holds logs, a drive
folder or a collector's wrapper folder).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hpforensics.errors import InputError, UsageError
from hpforensics.timeline import pipeline as P
from hpforensics.timeline import rows as R
from hpforensics.timeline.correlate import KbCorrelation, MemoryFindings
from hpforensics.timeline.intune import DeviceUpdateStatus, fleet_statuses
from hpforensics.evtx.formats import kind_of
from hpforensics.evtx.ingest import _DRIVE, _WRAPPERS
from hpforensics.timeline.outputs import RowSink
from hpforensics.evtx.records import ReadStats
from hpforensics.fleet import parquet
from hpforensics.fleet.cluster import (ClusterSpec, Task, TaskFailure, open_client, progress_bar,
                                       run_tasks)
from hpforensics.timeline.compliance import MonthCompliance
from hpforensics.timeline.lifecycle import UpdateLifecycle
from hpforensics.timeline.normalise import Event
from hpforensics.timeline.reading import shared_classifier
from hpforensics.report.html import write_report

log = logging.getLogger(__name__)

PARTS_DIR = ".fleet-parts"
TABLES = ("events", "timeline", "updates", "compliance", "devices", "inputs")
FAILURE_COLUMNS = ["task", "kind", "attempts", "error", "detail"]
REPORT_DEVICES = 2000  # report.html shows at most this many devices (all of them are in the CSVs)


@dataclass
class PartSummary:
    """What a worker sends back for one task: counts and small per-device records."""

    parts: list[str]
    workdir: str
    records: int = 0
    events: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    inputs: list[ReadStats] = field(default_factory=list)
    devices: list[P.DeviceResult] = field(default_factory=list)  # events left out


@dataclass
class FleetTimelineResult:
    partitions: int = 0  # device folders, zips and loose files given to tasks
    inputs: int = 0
    records: int = 0
    events: int = 0
    devices: int = 0
    months_judged: int = 0
    months_compliant: int = 0
    warnings: list[str] = field(default_factory=list)
    failures: list[TaskFailure] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # said once, not partial (the calendar)
    reach: list[tuple[str, str]] = field(default_factory=list)  # (product, last month) per device

    @property
    def partial(self) -> bool:
        return bool(self.warnings or self.failures)


# -- partitioning -------------------------------------------------------------------------------

def _is_collection(folder: Path) -> bool:
    """One device's collection: a drive or collector wrapper folder inside, or nothing but
    loose logs (no subfolders, no archives: logs of one folder are judged together)."""
    for entry in os.scandir(folder):
        name = entry.name.lower()
        if entry.is_dir():
            if name in _WRAPPERS or name == "windows" or _DRIVE.match(name):
                return True
            return False
        if name.endswith(".zip"):
            return False
    return True


def partitions(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The tasks' inputs: each entry of a fleet folder, or the path itself."""
    out: list[str] = []
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
        if p.is_dir() and not _is_collection(p):
            for name in sorted(os.listdir(p)):
                child = p / name
                if child.is_dir() or name.lower().endswith(".zip") or kind_of(name):
                    out.append(str(child))
        else:
            out.append(str(p))
    return out


# -- the worker side ----------------------------------------------------------------------------

def timeline_task(parts: Sequence[str], outdir: str, opts: P.TimelineOptions,
                  part_id: str) -> PartSummary:
    """Read, judge and write a batch of partitions (devices); returns its summary (runs on a
    worker). The batch goes through the single-process pipeline itself (`build_timeline` into a
    piece folder), so a fleet run writes the very lines a single run does; devices never mix
    (events are grouped by device), so batching changes nothing but the overhead per task."""
    work = Path(outdir) / PARTS_DIR / part_id
    if work.exists():  # a retry after a worker died half-way
        shutil.rmtree(work)
    parts = list(parts)
    summary = PartSummary(parts, str(work))
    # one process per task: Dask's worker processes are daemons and cannot fork a pool
    # memory findings are joined by the driver (it holds every device's lifecycles)
    opts = dataclasses.replace(opts, jobs=1, work_dir=None, findings=())
    try:
        result = P.build_timeline(parts, work, opts)
    except InputError as exc:  # nothing readable in this batch: reported, not fatal
        stats = ReadStats(", ".join(parts), warnings=[str(exc)])
        P._write_inputs(work, [stats])
        summary.inputs = [stats]
        return summary
    summary.records, summary.events, summary.inputs = result.records, result.events, result.inputs
    _write_parquet(work / "parquet", result.devices, part_id)
    summary.devices = [P.DeviceResult(d.device, d.product, [], d.lifecycles, d.months, d.summary)
                       for d in result.devices]
    return summary


_TYPES: dict[str, dict[str, str]] = {}


def _types(table: str) -> dict[str, str]:
    if not _TYPES:

        _TYPES["events"] = parquet.dataclass_types(Event, R.EVENT_COLUMNS)
        _TYPES["updates"] = parquet.dataclass_types(UpdateLifecycle, R.LIFECYCLE_COLUMNS)
        _TYPES["compliance"] = parquet.dataclass_types(MonthCompliance, R.COMPLIANCE_COLUMNS)
        counts = {"events", "boots", "updates_installed", "update_failures", "months",
                  "months_compliant", "months_noncompliant", "months_off_track",
                  "months_baseline_missing", "months_unjudged"}
        _TYPES["devices"] = {c: parquet.INT if c in counts else parquet.STRING
                             for c in R.DEVICE_COLUMNS}
        _TYPES["devices"].update(first_event=parquet.TIMESTAMP, last_event=parquet.TIMESTAMP,
                                 quality_paused_from=parquet.TIMESTAMP,
                                 quality_paused_until=parquet.TIMESTAMP,
                                 hotpatch_enrolment=parquet.BOOL, compliance_rate=parquet.FLOAT)
    return _TYPES[table]


def _write_parquet(root: Path, devices: list[P.DeviceResult], part_id: str) -> None:
    for d in devices:
        for table, records in (("events", d.events), ("updates", d.lifecycles),
                               ("compliance", d.months), ("devices", [d.summary])):
            types = _types(table)
            parquet.write_partition(root, table, d.device, types,
                                    parquet.rows_to_columns(types, records), part_id)


# -- the driver side ----------------------------------------------------------------------------

class _Merger:
    """Appends each finished task's pieces to the roll-ups, then drops the piece."""

    def __init__(self, outdir: Path, result: FleetTimelineResult, sample: int,
                 opts: P.TimelineOptions | None = None) -> None:
        self.outdir, self.result = outdir, result
        self.rings = opts.rings if opts else {}
        self.memory = MemoryFindings.load(opts.findings) if opts and opts.findings else None
        if self.memory is not None and self.memory.unbound:
            raise UsageError(f"--findings {self.memory.unbound[0][0]}: no device named; on a "
                             "fleet give it as DEVICE=FILE")
        self.autopatch: list[DeviceUpdateStatus] = []
        self.live: dict[str, list[KbCorrelation]] = {}
        self.sample_size = sample  # devices kept for report.html (0: no report)
        self.progress: Callable[[int, int], None] | None = None
        self.done = 0  # partitions finished, merged or finally failed
        self.redo: list[str] = []  # partitions of failed batches, to run one by one
        self.sinks = {t: RowSink(outdir, t, _columns(t)) for t in TABLES}
        self.failures = RowSink(outdir, "failures", FAILURE_COLUMNS)
        self.sample: list[P.DeviceResult] = []
        self.sample_inputs: list[ReadStats] = []
        self.seen: dict[str, str] = {}
        self.all_inputs_warned = True

    def _advance(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.result.partitions)

    def add(self, task: Task, got: PartSummary) -> None:
        work = Path(got.workdir)
        for table, sink in self.sinks.items():
            _append(work / f"{table}.csv", sink._csv_fh, skip_header=True)
            _append(work / f"{table}.jsonl", sink._jsonl_fh, skip_header=False)
        _move_parquet(work / "parquet", self.outdir / "parquet")
        shutil.rmtree(work, ignore_errors=True)
        res = self.result
        res.inputs += len(got.inputs)
        res.records += got.records
        res.events += got.events
        res.devices += len(got.devices)
        for stats in got.inputs:
            res.warnings.extend(stats.warnings)
            self.all_inputs_warned &= bool(stats.warnings)
        for d in got.devices:
            if d.months:
                res.reach.append((d.product, d.months[-1].month))
            judged = [m for m in d.months if m.compliant is not None]
            res.months_judged += len(judged)
            res.months_compliant += sum(1 for m in judged if m.compliant)
            if d.device in self.seen:
                res.warnings.append(f"device {d.device} appears in {self.seen[d.device]} and "
                                    f"{task.key}: its rows are judged separately per task")
            self.seen[d.device] = task.key
        rows, live = fleet_statuses(got.devices, self.rings, self.memory)
        self.autopatch += rows
        self.live.update(live)
        if len(self.sample) < self.sample_size:
            self.sample.extend(got.devices[:self.sample_size - len(self.sample)])
            self.sample_inputs.extend(got.inputs)
        self._advance(len(got.parts))

    def fail(self, task: Task, failure: TaskFailure) -> None:
        parts = task.args[0]
        shutil.rmtree(Path(task.args[1]) / PARTS_DIR / task.args[3], ignore_errors=True)
        if len(parts) > 1:  # a batch: every device gets its own task (and retry) instead
            log.info("batch %s failed (%s): running its %d devices one by one", task.key,
                     failure.error, len(parts))
            self.redo.extend(parts)
            return
        self._advance(1)
        self.result.failures.append(failure)
        self.failures.write({"task": failure.key, "kind": failure.kind,
                             "attempts": failure.attempts, "error": failure.error,
                             "detail": failure.detail})
        log.warning("task %s failed: %s", failure.key, failure.error)

    def close(self) -> None:
        for sink in [*self.sinks.values(), self.failures]:
            sink.close()
            self.result.outputs[sink.csv_path.stem] = sink.csv_path
        if self.memory is not None:
            self.memory.bind(self.seen)  # a device the findings name must be in the fleet
        view = _ReportView([], [], 0, 0, [], sorted(self.autopatch, key=lambda r: r.device_name),
                           self.live)
        P.write_autopatch(self.outdir, view)
        self.result.outputs.update(view.outputs)


def _columns(table: str) -> list[str]:
    return {"events": R.EVENT_COLUMNS, "timeline": R.TIMELINE_COLUMNS,
            "updates": R.LIFECYCLE_COLUMNS, "compliance": R.COMPLIANCE_COLUMNS,
            "devices": R.DEVICE_COLUMNS, "inputs": P.INPUT_COLUMNS}[table]


def _append(piece: Path, out: Any, skip_header: bool) -> None:
    """Copy a piece into an open roll-up (block copy: pieces can be large)."""
    if not piece.exists():
        return
    with open(piece, encoding="utf-8", newline="") as fh:
        if skip_header:
            fh.readline()
        shutil.copyfileobj(fh, out, 1 << 20)


def _move_parquet(src: Path, dst: Path) -> None:
    if not src.is_dir():
        return
    for file in src.rglob("*.parquet"):
        target = dst / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, target)


@dataclass
class _ReportView:
    """What report.html reads, for at most REPORT_DEVICES devices."""

    inputs: list[ReadStats]
    devices: list[P.DeviceResult]
    records: int
    events: int
    warnings: list[str]
    autopatch: list[DeviceUpdateStatus] = field(default_factory=list)
    memory: dict[str, list[KbCorrelation]] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)


def run_fleet_timeline(paths: Sequence[str | Path], outdir: Path, opts: P.TimelineOptions,
                       spec: ClusterSpec, *, html: bool = True, show_progress: bool = True,
                       client: Any = None, batch: int | None = None,
                       task_fn: Callable[..., PartSummary] = timeline_task) -> FleetTimelineResult:
    """The fleet run; `client` reuses a connected Dask client instead of opening one;
    `batch` devices per task (default: by fleet size and cluster threads)."""
    parts = partitions(paths)
    if not parts:
        raise UsageError("no event logs found under " + ", ".join(map(str, paths)))
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(outdir / "parquet", ignore_errors=True)  # ours: a rerun must not mix runs
    result = FleetTimelineResult(partitions=len(parts))
    merger = _Merger(outdir, result, REPORT_DEVICES if html else 0, opts)
    try:
        with progress_bar("devices", len(parts), show_progress) as progress:
            merger.progress = progress
            if client is not None:
                _run_batches(client, parts, batch, outdir, opts, task_fn, merger)
            else:
                with open_client(spec) as own:
                    _run_batches(own, parts, batch, outdir, opts, task_fn, merger)
    finally:
        merger.close()
        # merged pieces are gone already; what is left belongs to failed tasks
        shutil.rmtree(outdir / PARTS_DIR, ignore_errors=True)

    notice = P.calendar_notice(result.reach, shared_classifier(opts.product).calendar)
    if notice:
        result.notices.append(notice)
    if not result.records and merger.all_inputs_warned:
        first = result.warnings[0] if result.warnings else (
            result.failures[0].error if result.failures else "nothing readable")
        raise InputError(parts[0], "no records could be read: " + first)
    if html:

        view = _ReportView(merger.sample_inputs, sorted(merger.sample, key=lambda d: d.device),
                           result.records, result.events, list(result.warnings),
                           sorted(merger.autopatch, key=lambda r: r.device_name), merger.live)
        if result.devices > len(view.devices):
            view.warnings.append(f"report.html shows {len(view.devices)} of {result.devices} "
                                 "devices; every device is in the CSV and Parquet outputs")
        result.outputs["report"] = write_report(outdir / "report.html", view)
    return result


def batch_size(devices: int, threads: int) -> int:
    """Devices per task: enough tasks per thread (16) to balance the load, at most 16 devices
    a task so per-task costs (a Dask round trip, a dozen small files) are shared."""
    return max(1, min(16, devices // (16 * max(threads, 1))))


def _run_batches(client: Any, parts: list[str], batch: int | None, outdir: Path,
                 opts: P.TimelineOptions, task_fn: Callable[..., PartSummary],
                 merger: _Merger) -> None:
    threads = sum(client.nthreads().values()) if client is not None else 1
    size = batch or batch_size(len(parts), threads)
    serial = iter(range(10**9))

    def tasks(groups: list[list[str]]):
        for group in groups:
            key = group[0] if len(group) == 1 else f"{group[0]} (+{len(group) - 1})"
            yield Task(key, task_fn, (group, str(outdir), opts, f"{next(serial):07d}"))

    groups = [parts[i:i + size] for i in range(0, len(parts), size)]
    run_tasks(client, tasks(groups), len(groups), merger.add, merger.fail)
    if merger.redo:  # devices of failed batches, one task each (each retried once)
        redo, merger.redo = merger.redo, []
        run_tasks(client, tasks([[p] for p in redo]), len(redo), merger.add, merger.fail)
