"""From logs to the auditor's outputs: read (optionally in parallel), normalise, stream
events.csv out as files finish, then build lifecycles, compliance and the report.

Only the records that matter (update, servicing, boot evidence, hotpatch mentions) are kept in
memory, so memory follows the number of update events, not the size of the logs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import logging
import os
import shutil
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from hpforensics.errors import HPFError, InputError, UsageError
from hpforensics.evtx.classify import Classifier
from hpforensics.evtx.compliance import ComplianceRules, MonthCompliance
from hpforensics.evtx.ingest import InputItem, discover, local_path
from hpforensics.evtx.lifecycle import UpdateLifecycle, boot_events, build_lifecycles
from hpforensics.evtx.normalise import Event, normalise
from hpforensics.evtx.outputs import (CsvLines, RowSink, SpillSorter, json_line, plain_values,
                                      safe_cells, write_run)
from hpforensics.evtx.readers import PARSERS, read_evtx, read_python_evtx
from hpforensics.evtx.records import ReadStats
from hpforensics.evtx import rows as R

log = logging.getLogger(__name__)

INPUT_COLUMNS = ["source", "device_hint", "records", "relevant", "expected_records", "sha256",
                 "size", "warnings"]


@dataclass
class TimelineOptions:
    parser: str = "evtx"
    devices: frozenset[str] = frozenset()  # empty: all
    start: dt.date | None = None
    end: dt.date | None = None
    product: str | None = None  # None: inferred per device, default Windows 11 24H2
    jobs: int = 1
    grace_days: int | None = None  # None: the deadline is the next month's release
    hash_inputs: bool = True
    work_dir: Path | None = None  # where workers leave sorted timeline runs (set by the run)

    def __post_init__(self) -> None:
        if self.parser not in PARSERS:
            raise UsageError(f"--parser must be one of {', '.join(PARSERS)}, not {self.parser!r}")
        if self.jobs < 1:
            raise UsageError("--jobs must be at least 1")


@dataclass
class DeviceResult:
    device: str
    product: str
    events: list[Event]
    lifecycles: list[UpdateLifecycle]
    months: list[MonthCompliance]
    summary: dict


@dataclass
class TimelineResult:
    inputs: list[ReadStats] = field(default_factory=list)
    devices: list[DeviceResult] = field(default_factory=list)
    events: int = 0
    records: int = 0
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return [w for s in self.inputs for w in s.warnings]

    @property
    def partial(self) -> bool:
        return bool(self.warnings)


# -- reading (runs in worker processes when jobs > 1) ------------------------------------------

_CLASSIFIER: Classifier | None = None


def _classifier(product: str | None) -> Classifier:
    global _CLASSIFIER
    if _CLASSIFIER is None or _CLASSIFIER.product != product:
        _CLASSIFIER = Classifier(product=product)
    return _CLASSIFIER


@dataclass
class FileResult:
    """One input's events, rendered where they were read (so workers share the work)."""

    events: list[Event]
    stats: ReadStats
    events_csv: str = ""
    events_jsonl: str = ""
    # In a worker process, the events' CSV and JSONL text go to the worker's piece file instead
    # of the pipe (path, offset, CSV bytes, JSONL bytes): the parent block-copies the range
    # instead of unpickling and writing text.
    events_pieces: tuple[Path, int, int, int] | None = None
    timeline_run: Path | None = None  # this input's timeline rows, sorted, in a run file
    timeline: list[tuple[tuple[str, str, str], str, str]] = field(default_factory=list)

    # Between processes the events travel as tuples: about half the pickling cost of objects.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["events"] = [R.event_tuple(e) for e in self.events]
        return state

    def __setstate__(self, state: dict) -> None:
        state["events"] = [Event(*t) for t in state["events"]]
        self.__dict__.update(state)


def read_item(item: InputItem, parser: str = "evtx", product: str | None = None,
              hash_inputs: bool = False, opts: TimelineOptions | None = None) -> FileResult:
    """Normalised events of one input, and what reading it gave (never raises on bad data)."""
    from hpforensics.evidence import describe_input

    stats = ReadStats(item.source, device_hint=item.device_hint)
    classifier = _classifier(product)
    events: list[Event] = []
    try:
        with local_path(item) as path:
            stats.size = os.path.getsize(path)
            # the Rust path hashes the file on its integrity scan's read (no second pass)
            scan_hashes = item.kind == "evtx" and parser == "evtx"
            if hash_inputs and not scan_hashes:
                stats.sha256 = describe_input(path).sha256
            for raw in _records(item.kind, path, stats, parser, hash_inputs):
                ev = normalise(raw, item.source, item.device_hint, classifier)
                if ev is not None and (opts is None or _keep(ev, opts)):
                    events.append(ev)
    except HPFError as exc:
        stats.warnings.append(str(exc))
    stats.relevant = len(events)
    work_dir = opts.work_dir if opts else None
    return _rendered(events, stats, work_dir, pieces=work_dir is not None and opts.jobs > 1)


def _rendered(events: list[Event], stats: ReadStats, work_dir: Path | None,
              pieces: bool = False) -> FileResult:
    """Render where the events were read, so parallel workers share the output work."""
    result = FileResult(events, stats)
    values = [R.event_values(ev) for ev in events]
    timeline = [R.timeline_values(ev, v[R.TIME_INDEX]) for ev, v in zip(events, values)]
    csv_text, jsonl_text = R.EVENT_CSV.text(values), R.EVENT_JSON.text(values)
    if pieces and events and work_dir is not None:
        result.events_pieces = _piece(work_dir, csv_text, jsonl_text)
    else:
        result.events_csv, result.events_jsonl = csv_text, jsonl_text
    rows = [((tv[1], tv[4], str(tv[11])), line, js) for tv, line, js in zip(
        timeline, R.TIMELINE_CSV.lines(timeline), R.TIMELINE_JSON.lines(timeline))]
    # Small results travel back with the events; large ones go to a sorted run on disk.
    if len(rows) > _RUN_ROWS and work_dir is not None:
        result.timeline_run = write_run(work_dir, rows)
    else:
        result.timeline = rows
    return result


_RUN_ROWS = 20_000


_PIECE_LIMIT = 64 << 20  # a worker starts a new piece file past this size
_PIECE: dict[Path, tuple[Path, Any]] = {}  # work dir -> this worker's piece file and handle


def _piece(work_dir: Path, csv_text: str, jsonl_text: str) -> tuple[Path, int, int, int]:
    """Append one input's CSV and JSONL text to this worker's piece file: one file per worker
    (named <pid>-<n>.piece), not two per input (creating and removing a file costs ~0.4 ms)."""
    current = _PIECE.get(work_dir)
    if current is None or current[1].tell() > _PIECE_LIMIT:
        if current is not None:
            current[1].close()
        n = int(current[0].stem.rpartition("-")[2]) + 1 if current else 0
        path = work_dir / f"{os.getpid()}-{n}.piece"
        current = _PIECE[work_dir] = (path, open(path, "xb"))  # noqa: SIM115
    path, fh = current
    offset = fh.tell()
    data_csv, data_jsonl = csv_text.encode("utf-8"), jsonl_text.encode("utf-8")
    fh.write(data_csv)
    fh.write(data_jsonl)
    fh.flush()  # in the file before the parent hears of it
    return path, offset, len(data_csv), len(data_jsonl)


def _records(kind: str, path: str, stats: ReadStats, parser: str,
             hash_input: bool = False) -> Iterator:
    if kind == "evtx":
        if parser == "evtx":
            return read_evtx(path, stats, hash_input=hash_input)
        return read_python_evtx(path, stats)
    from hpforensics.evtx import exports  # imported when an export is read, not at start-up

    if kind == "xml":
        return exports.read_xml(path, stats)
    if kind == "json":
        return exports.read_json(path, stats)
    if kind == "etl":
        return exports.read_etl(path, stats)
    if kind == "registry":
        from hpforensics.evtx.registry import read_registry

        return read_registry(path, stats)
    raise InputError(path, f"unsupported input kind {kind!r}")


# The inputs and options of the run being read by a pool: forked workers inherit them, so a
# task is an index (pickling an InputItem and the options per input cost the parent ~0.2 ms).
_JOB: tuple[Sequence[InputItem], TimelineOptions] | None = None


def _read_indices(indices: Sequence[int]) -> list[FileResult]:
    assert _JOB is not None
    items, opts = _JOB
    return [read_item(items[i], opts.parser, opts.product, opts.hash_inputs, opts)
            for i in indices]


def iter_read(items: Sequence[InputItem], opts: TimelineOptions) -> Iterator[FileResult]:
    """FileResults in input order. With --jobs N the parent is one of the N readers: it reads
    its share of the inputs itself and takes the rest from N - 1 forked workers (a parent that
    only waited on N workers would be an (N + 1)th process on N cores, unpickling and copying
    while they read). While the next result due is a worker's and not ready, the parent reads
    ahead in its own share instead of waiting; its results go to a piece file as a worker's
    do, so what it holds ahead is the events, not their text."""
    global _JOB
    if opts.jobs == 1 or len(items) < 2:  # read here: no worker piece files
        one = dataclasses.replace(opts, jobs=1)
        yield from (read_item(item, one.parser, one.product, one.hash_inputs, one)
                    for item in items)
        return
    import multiprocessing  # only with --jobs > 1 (~4 ms of start-up otherwise)
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    workers = min(opts.jobs, len(items)) - 1
    mine = _parent_share(items, workers)
    theirs = [i for i in range(len(items)) if i not in mine]
    # a few inputs per task: one per file costs the parent a pipe round trip each
    size = max(1, min(32, len(theirs) // (8 * workers)))
    tasks = [theirs[k:k + size] for k in range(0, len(theirs), size)]
    _JOB = (items, opts)
    # Not multiprocessing.Pool: its worker-handler thread wakes on every result waiting in the
    # pipe and spins until the result thread has read it (~0.4 s of the parent's CPU on the
    # 1,792-file fleet).
    try:
        with ProcessPoolExecutor(workers,
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            try:
                # Tasks are handed out a few at a time, not all at once: results a worker
                # finished early wait in the parent's memory until their turn.
                futures: list[Any] = []
                taken = 0  # tasks whose results the parent has taken

                def submit_more() -> None:
                    while len(futures) < min(taken + 4 * workers, len(tasks)):
                        futures.append(pool.submit(_read_indices, tasks[len(futures)]))

                submit_more()
                task_of = {i: t for t, task in enumerate(tasks) for i in task}
                own = deque(sorted(mine))
                ready: dict[int, FileResult] = {}
                held = 0  # events of the parent's inputs read ahead and not yet handed on
                for i in range(len(items)):
                    while i not in ready:
                        t = task_of.get(i)
                        if t is not None and (futures[t].done() or not own
                                              or held > _READ_AHEAD_EVENTS):
                            ready.update(zip(tasks[t], futures[t].result()))
                            futures[t] = None  # its results are in `ready`
                            taken += 1
                            submit_more()
                        else:  # the parent's own input, or one of its own while it waits
                            j = own.popleft()
                            ready[j] = read_item(items[j], opts.parser, opts.product,
                                                 opts.hash_inputs, opts)
                            held += len(ready[j].events)
                    if i in mine:
                        held -= len(ready[i].events)
                    yield ready.pop(i)
            except BaseException:  # the run stops here (an error, ^C): drop the inputs not
                pool.shutdown(wait=True, cancel_futures=True)  # started, not read them all
                raise
    finally:
        _JOB = None
        if opts.work_dir is not None and opts.work_dir in _PIECE:  # the parent's own piece
            _PIECE.pop(opts.work_dir)[1].close()


# Results read ahead wait outside the run's bounded structures (the timeline rows' spill to
# disk): past this many events the parent waits for the worker instead of reading on.
_READ_AHEAD_EVENTS = 20_000


def _parent_share(items: Sequence[InputItem], workers: int) -> set[int]:
    """Indices of the inputs the parent reads: taken in order whenever the parent is behind
    an equal share of the bytes (an archive member counts as 1 MiB, its size unknown here)."""
    mine: set[int] = set()
    own = others = 0
    for i, item in enumerate(items):
        try:
            size = os.path.getsize(item.path) if not item.member else 1 << 20
        except OSError:
            size = 1 << 20
        if own * workers <= others:
            mine.add(i)
            own += size
        else:
            others += size
    return mine


# -- the whole run ------------------------------------------------------------------------------

def _keep(ev: Event, opts: TimelineOptions) -> bool:
    if opts.devices and ev.device.lower() not in opts.devices:
        return False
    if ev.time is not None:
        day = ev.time.date()
        if (opts.start and day < opts.start) or (opts.end and day > opts.end):
            return False
    return True


def run_timeline(paths: Sequence[str | Path], outdir: Path, opts: TimelineOptions,
                 *, html: bool = True) -> TimelineResult:
    items = discover(paths)
    if not items:
        raise UsageError("no event logs found under " + ", ".join(map(str, paths)))
    result = TimelineResult()
    outdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".hpf-sort-", dir=outdir))
    try:
        with _fewer_collections():
            _run(items, outdir, dataclasses.replace(opts, work_dir=work), result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if html:
        from hpforensics.report.html import write_report

        result.outputs["report"] = write_report(outdir / "report.html", result)
    return result


@contextlib.contextmanager
def _fewer_collections(every: int = 50_000) -> Iterator[None]:
    """The cyclic garbage collector runs after `every` new container objects, not 700: a run
    creates millions (events, rows, parsed records) that it keeps or frees by reference count,
    and the default threshold made the collector ~6 % of a fleet run (forked workers inherit
    the setting); collection still happens, cycles are still freed. Runs overlapping in threads
    (the fleet's Dask workers) restore the threshold found by the first when the last ends."""
    global _GC_RUNS, _GC_SAVED
    with _GC_LOCK:
        if _GC_RUNS == 0:
            _GC_SAVED = gc.get_threshold()
            gc.set_threshold(max(every, _GC_SAVED[0]), *_GC_SAVED[1:])
        _GC_RUNS += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_RUNS -= 1
            if _GC_RUNS == 0:
                gc.set_threshold(*_GC_SAVED)


_GC_LOCK = threading.Lock()
_GC_RUNS = 0  # runs inside _fewer_collections now
_GC_SAVED = gc.get_threshold()


def _run(items: list[InputItem], outdir: Path, opts: TimelineOptions,
         result: TimelineResult) -> None:
    by_device: dict[str, list[Event]] = defaultdict(list)
    timeline = SpillSorter(opts.work_dir or outdir)
    pieces: dict[str, Path] = {}  # worker pid -> its piece file being copied from
    with RowSink(outdir, "events", R.EVENT_COLUMNS) as events_out:
        for part in iter_read(items, opts):
            result.inputs.append(part.stats)
            result.records += part.stats.records
            if part.events_pieces is not None:
                piece = part.events_pieces[0]
                owner = piece.stem.rpartition("-")[0]
                if pieces.get(owner, piece) != piece:  # that worker moved on to a new file:
                    pieces[owner].unlink()  # every range of its last one was copied
                pieces[owner] = piece
                events_out.append_range(*part.events_pieces, len(part.events))
            else:
                events_out.write_text(part.events_csv, part.events_jsonl, len(part.events))
            if part.timeline_run is not None:
                timeline.add_run(part.timeline_run)
            timeline.extend(part.timeline)
            for ev in part.events:
                by_device[ev.device].append(ev)
        result.events = events_out.count
    result.outputs["events"] = events_out.csv_path
    if not result.records and all(s.warnings for s in result.inputs):
        raise InputError(items[0].source,
                         "no records could be read: " + result.inputs[0].warnings[0])
    _write_inputs(outdir, result.inputs)
    rules = ComplianceRules(_classifier(opts.product).calendar, opts.grace_days)
    for device in sorted(by_device):
        result.devices.append(_device(device, by_device[device], rules, opts))
    _write_rest(outdir, result, timeline)


def infer_product(events: list[Event], lifecycles: list[UpdateLifecycle], default: str) -> str:
    """Windows Server 2025 when the device booted a 26100.32xxx build (its own branch from
    2026) or installed a KB the calendar lists only for the server; `windows-build-N` when it
    only ever booted builds that are not 26100/26200 (no hotpatching); else the default."""
    from hpforensics.kb.calendar import WINDOWS_SERVER_2025

    calendar = _classifier(None).calendar
    majors = []
    for ev in sorted((e for e in events if e.os_build and e.category == "boot" and e.time),
                     key=lambda e: e.time):  # type: ignore[arg-type,return-value]
        major, _, qfe = ev.os_build.partition(".")
        majors.append(major)
        if major == "26100" and qfe.isdigit() and int(qfe) >= 32000:
            return WINDOWS_SERVER_2025
    if majors and not {"26100", "26200"} & set(majors):
        return f"windows-build-{majors[-1]}"  # not a hotpatch-capable release
    for lc in lifecycles:
        products = {r.product for r in calendar.lookup_kb_all(lc.kb)} if lc.kb else set()
        if products == {WINDOWS_SERVER_2025}:
            return WINDOWS_SERVER_2025
    return default


def _device(device: str, events: list[Event], rules: ComplianceRules,
            opts: TimelineOptions) -> DeviceResult:
    from hpforensics.kb.calendar import WINDOWS11_24H2

    boots = boot_events(events)
    lifecycles = build_lifecycles(events, boots)
    product = opts.product or infer_product(events, lifecycles, WINDOWS11_24H2)
    times = [e.time for e in events if e.time]
    months: list[MonthCompliance] = []
    if times:
        start = opts.start.strftime("%Y-%m") if opts.start else None
        end = opts.end.strftime("%Y-%m") if opts.end else None
        months = rules.device_months(device, product, lifecycles, boots, min(times), max(times),
                                     start, end)
    summary = R.device_row(device, product, events, lifecycles, months)
    return DeviceResult(device, product, events, lifecycles, months, summary)


def _write_inputs(outdir: Path, inputs: list[ReadStats]) -> None:
    with RowSink(outdir, "inputs", INPUT_COLUMNS) as out:
        for s in inputs:
            out.write({"source": s.source, "device_hint": s.device_hint, "records": s.records,
                       "relevant": s.relevant, "expected_records": s.expected_records,
                       "sha256": s.sha256, "size": s.size,
                       "warnings": " | ".join(s.warnings)})


def _write_rest(outdir: Path, result: TimelineResult, timeline: SpillSorter) -> None:
    tcols = R.TIMELINE_COLUMNS
    for d in result.devices:
        derived = []
        csv_lines = CsvLines()
        for row in R.effective_rows(d.lifecycles):
            tv = plain_values(tcols, row)
            derived.append(((row["datetime"], row["device"], ""), csv_lines(safe_cells(tv)),
                            json_line(tcols, tv)))
        timeline.extend(derived)
    with RowSink(outdir, "timeline", tcols) as out:
        out.write_lines((csv_line, line) for _, csv_line, line in timeline)
    result.outputs["timeline"] = out.csv_path
    with RowSink(outdir, "updates", R.LIFECYCLE_COLUMNS) as out:
        for d in result.devices:
            for lc in d.lifecycles:
                out.write(R.lifecycle_row(lc))
    result.outputs["updates"] = out.csv_path
    with RowSink(outdir, "compliance", R.COMPLIANCE_COLUMNS) as out:
        for d in result.devices:
            for m in d.months:
                out.write({c: getattr(m, c) for c in R.COMPLIANCE_COLUMNS})
    result.outputs["compliance"] = out.csv_path
    with RowSink(outdir, "devices", R.DEVICE_COLUMNS) as out:
        for d in result.devices:
            out.write(d.summary)
    result.outputs["devices"] = out.csv_path
    with RowSink(outdir, "months", R.MONTH_COLUMNS) as out:
        for row in R.month_rows(m for d in result.devices for m in d.months):
            out.write(row)
    result.outputs["months"] = out.csv_path
