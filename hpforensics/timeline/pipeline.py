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
import shutil
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from hpforensics.errors import InputError, UsageError
from hpforensics.timeline.compliance import ComplianceRules, MonthCompliance
from hpforensics.timeline.correlate import KbCorrelation, MemoryFindings
from hpforensics.timeline.eligibility import Eligibility
from hpforensics.timeline.forked import map_forked
from hpforensics.evtx.ingest import InputItem, discover
from hpforensics.timeline.intune import DeviceUpdateStatus, fleet_statuses
from hpforensics.timeline.lifecycle import UpdateLifecycle, boot_events, build_lifecycles
from hpforensics.timeline.normalise import Event
from hpforensics.timeline.outputs import (FLUSH_BYTES, CsvLines, RowSink, json_line, plain_values,
                                      safe_cells)
from hpforensics.evtx.readers import PARSERS
from hpforensics.timeline.reading import iter_read, shared_classifier
from hpforensics.evtx.records import ReadStats
from hpforensics.timeline import rows as R
from hpforensics.textsafe import clean
from hpforensics.kb.calendar import WINDOWS11_24H2
from hpforensics.timeline.intune import DEVICE_HEADINGS, SUMMARY_HEADINGS, ring_summaries

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
    rings: dict[str, str] = field(default_factory=dict)  # device (lower case) -> ring
    findings: tuple[tuple[str, Path], ...] = ()  # (device or '', memory findings JSON)
    work_dir: Path | None = None  # where workers leave their piece files (set by the run)

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
    autopatch: list[DeviceUpdateStatus] = field(default_factory=list)
    memory: dict[str, list[KbCorrelation]] = field(default_factory=dict)  # device -> its KBs
    # said once per run, not about damaged input (no exit 3): e.g. the calendar running out
    notices: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [clean(w) for s in self.inputs for w in s.warnings]  # parsers' text, any bytes

    @property
    def partial(self) -> bool:
        return bool(self.warnings)


# -- the whole run ------------------------------------------------------------------------------

def build_timeline(paths: Sequence[str | Path], outdir: Path,
                   opts: TimelineOptions) -> TimelineResult:
    """Every output but report.html (hpforensics.runs.timeline adds that)."""
    items = discover(paths)
    if not items:
        raise UsageError("no event logs found under " + ", ".join(map(str, paths)))
    memory = MemoryFindings.load(opts.findings) if opts.findings else None  # bad file: early
    result = TimelineResult()
    outdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".hpf-work-", dir=outdir))  # the workers' piece files
    try:
        with _fewer_collections():
            _run(items, outdir, dataclasses.replace(opts, work_dir=work), result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if memory is not None:
        memory.bind(d.device for d in result.devices)
    result.autopatch, result.memory = fleet_statuses(result.devices, opts.rings, memory)
    write_autopatch(outdir, result)
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
    read: list[Event] = []  # every event, in the order read (input by input): the timeline's
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
            read.extend(part.events)
            for ev in part.events:
                by_device[ev.device].append(ev)
        result.events = events_out.count
    result.outputs["events"] = events_out.csv_path
    if not result.records and all(s.warnings for s in result.inputs):
        first = result.inputs[0].warnings[0]
        prefix = items[0].source + ": "  # the warning names the input already: once is enough
        raise InputError(items[0].source, "no records could be read: "
                         + (first[len(prefix):] if first.startswith(prefix) else first))
    _write_inputs(outdir, result.inputs)
    rules = ComplianceRules(shared_classifier(opts.product).calendar, opts.grace_days)
    result.devices.extend(_devices(by_device, rules, opts))
    notice = calendar_notice([(d.product, d.months[-1].month) for d in result.devices if d.months],
                             rules.calendar)
    if notice:
        result.notices.append(notice)
    _write_rest(outdir, result, read)


def calendar_notice(reach: Sequence[tuple[str, str]], calendar) -> str:
    """One line when devices' logs reach months past their product's last confirmed calendar
    month ('' otherwise): those months are judged on unconfirmed or unknown rows.
    `reach`: (product, last month judged) per device."""
    late: dict[str, list] = {}
    for product, month in reach:
        if product not in calendar.products:
            continue  # no hotpatch programme: nothing is judged against the calendar
        last = calendar.last_confirmed_month(product)
        if last is None or month > last:
            entry = late.setdefault(product, [last, month, 0])
            entry[1], entry[2] = max(entry[1], month), entry[2] + 1
    if not late:
        return ""
    parts = [f"{p} to {reach_} (last confirmed {last or 'none'}, {n} device(s))"
             for p, (last, reach_, n) in sorted(late.items())]
    return ("calendar: the logs reach past the calendar's last confirmed month: "
            + "; ".join(parts) + "; those months are judged on unconfirmed or unknown rows "
            "(hpforensics calendar check lists them; calendar update adds Microsoft's pages)")


def infer_product(events: list[Event], lifecycles: list[UpdateLifecycle], default: str) -> str:
    """Windows Server 2025 when the device booted a 26100.32xxx build (its own branch from
    2026) or installed a KB the calendar lists only for the server; `windows-build-N` when it
    only ever booted builds that are not 26100/26200/26300 (no hotpatching); Windows 11 25H2 or
    26H2 when its last boot was a 26200 / 26300 build (each judged by its own rows); else the
    default."""
    # lazy: only this path uses it (kept off this module's import cost)
    from hpforensics.kb.calendar import (BUILD_MAJOR, SERVER_REVISION_FLOOR, WINDOWS11_24H2,
                                         WINDOWS_SERVER_2025)

    calendar = shared_classifier(None).calendar
    client = {str(major): p for p, major in BUILD_MAJOR.items() if p != WINDOWS_SERVER_2025}
    client["26100"] = WINDOWS11_24H2
    majors = []
    for ev in sorted((e for e in events if e.os_build and e.category == "boot" and e.time),
                     key=lambda e: e.time):  # type: ignore[arg-type,return-value]
        major, _, qfe = ev.os_build.partition(".")
        majors.append(major)
        if major == "26100" and qfe.isdigit() and int(qfe) >= SERVER_REVISION_FLOOR:
            return WINDOWS_SERVER_2025
    if majors and not set(client) & set(majors):
        return f"windows-build-{majors[-1]}"  # not a hotpatch-capable release
    for lc in lifecycles:
        products = {r.product for r in calendar.lookup_kb_all(lc.kb)} if lc.kb else set()
        if products == {WINDOWS_SERVER_2025}:
            return WINDOWS_SERVER_2025
    if majors and majors[-1] != "26100" and majors[-1] in client:
        return client[majors[-1]]
    return default


def _devices(by_device: dict[str, list[Event]], rules: ComplianceRules,
             opts: TimelineOptions) -> list[DeviceResult]:
    """Each device's results, in name order. With --jobs N and enough events, N forked
    processes share the devices (the serial end of a dense fleet's run was ~1.4 s of device
    work on 317 MB); the events stay where they are and only the results come back."""
    names = sorted(by_device)
    if opts.jobs > 1 and sum(map(len, by_device.values())) >= _FORK_EVENTS:
        def one(name: str) -> DeviceResult:
            return dataclasses.replace(_device(name, by_device[name], rules, opts), events=[])

        done = map_forked(one, names, opts.jobs, cost=lambda name: len(by_device[name]))
        for d in done:
            d.events = by_device[d.device]
        return done
    return [_device(name, by_device[name], rules, opts) for name in names]


_FORK_EVENTS = 50_000  # fewer: forking a pool costs more than it saves


def _device(device: str, events: list[Event], rules: ComplianceRules,
            opts: TimelineOptions) -> DeviceResult:

    boots = boot_events(events)
    lifecycles = build_lifecycles(events, boots)
    product = opts.product or infer_product(events, lifecycles, WINDOWS11_24H2)
    eligibility = Eligibility.of(product, events, lifecycles)
    times = [e.time for e in events if e.time]
    months: list[MonthCompliance] = []
    if times:
        start = opts.start.strftime("%Y-%m") if opts.start else None
        end = opts.end.strftime("%Y-%m") if opts.end else None
        months = rules.device_months(device, product, lifecycles, boots, min(times), max(times),
                                     start, end, eligibility)
    summary = R.device_row(device, product, events, lifecycles, months)
    return DeviceResult(device, product, events, lifecycles, months, summary)


def write_autopatch(outdir: Path, result: TimelineResult | Any) -> None:
    """summary.csv (per ring) and summary-devices.csv in the Intune report's terms; memory.csv
    (installed per the logs vs live in memory) when findings were given."""

    for name, headings, rows in (
            ("summary", SUMMARY_HEADINGS, ring_summaries(result.autopatch)),
            ("summary-devices", DEVICE_HEADINGS, result.autopatch)):
        with RowSink(outdir, name, list(headings.values())) as out:
            for row in rows:
                out.write({h: getattr(row, f) for f, h in headings.items()})
        result.outputs[name] = out.csv_path
    if result.memory:
        columns = [f.name for f in dataclasses.fields(KbCorrelation)]
        with RowSink(outdir, "memory", columns) as out:
            for device in sorted(result.memory):
                for row in result.memory[device]:
                    out.write(dataclasses.asdict(row))
        result.outputs["memory"] = out.csv_path


def _write_inputs(outdir: Path, inputs: list[ReadStats]) -> None:
    with RowSink(outdir, "inputs", INPUT_COLUMNS) as out:
        for s in inputs:
            out.write({"source": s.source, "device_hint": s.device_hint, "records": s.records,
                       "relevant": s.relevant, "expected_records": s.expected_records,
                       "sha256": s.sha256, "size": s.size,
                       "warnings": clean(" | ".join(s.warnings))})


def _write_rest(outdir: Path, result: TimelineResult, events: list[Event]) -> None:
    tcols = R.TIMELINE_COLUMNS
    derived: list[tuple[R.TimelineKey, tuple[str, str]]] = []
    csv_lines = CsvLines()
    for d in result.devices:
        for row in R.effective_rows(d.lifecycles):
            tv = plain_values(tcols, row)
            derived.append(((row["datetime"], row["device"], ""),
                            (csv_lines(safe_cells(tv)), json_line(tcols, tv))))
    # The timeline is rendered here, in its order, from the events the run holds: nothing of it
    # was kept or spilled to disk while reading (its text is twice the events' size in memory).
    items = R.timeline_order(events, derived)
    with RowSink(outdir, "timeline", tcols) as out:
        out.write_rendered(lambda csv_write, json_write: R.write_timeline(
            items, csv_write, json_write, FLUSH_BYTES))
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
