"""Reading the inputs of a timeline run: one input at a time into normalised events and their
rendered rows (`read_item`), and all of them in input order, in this process or with forked
workers beside it (`iter_read`, with --jobs N).
"""
from __future__ import annotations

import dataclasses
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from hpforensics.errors import HPFError
from hpforensics.evtx.formats import reader_for
from hpforensics.evtx.ingest import InputItem, local_path
from hpforensics.evtx.records import ReadStats
from hpforensics.timeline import rows as R
from hpforensics.timeline.classify import Classifier
from hpforensics.timeline.normalise import Event, normalise
from hpforensics.evidence import check_regular, describe_input

if TYPE_CHECKING:  # the options are the run's (pipeline.py); read here by attribute only
    from hpforensics.timeline.pipeline import TimelineOptions

_CLASSIFIER: Classifier | None = None


def shared_classifier(product: str | None) -> Classifier:
    """One Classifier per process (it loads the calendar), rebuilt when the product changes."""
    global _CLASSIFIER
    if _CLASSIFIER is None or _CLASSIFIER.product != product:
        _CLASSIFIER = Classifier(product=product)
    return _CLASSIFIER


@dataclass
class FileResult:
    """One input's events, and their events.csv / events.jsonl lines rendered where they were
    read (so workers share that work). Their timeline lines are rendered at the end of the run,
    in the timeline's order, from the events the run holds anyway."""

    events: list[Event]
    stats: ReadStats
    events_csv: str = ""
    events_jsonl: str = ""
    # In a worker process, the events' CSV and JSONL text go to the worker's piece file instead
    # of the pipe (path, offset, CSV bytes, JSONL bytes): the parent block-copies the range
    # instead of unpickling and writing text.
    events_pieces: tuple[Path, int, int, int] | None = None

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

    stats = ReadStats(item.source, device_hint=item.device_hint)
    classifier = shared_classifier(product)
    events: list[Event] = []
    try:
        check_regular(item.path)  # a FIFO or device named as a log: one warning, never opened
        with local_path(item, stats.warnings) as path:
            stats.size = os.path.getsize(path)
            reader = reader_for(item.kind, path)
            if hash_inputs and not reader.hashes_on_read:  # else no second pass over the file
                stats.sha256 = describe_input(path).sha256
            for raw in reader.read(path, stats, parser=parser, hash_input=hash_inputs):
                ev = normalise(raw, item.source, item.device_hint, classifier)
                if ev is not None and (opts is None or _keep(ev, opts)):
                    events.append(ev)
    except HPFError as exc:
        stats.warnings.append(str(exc))
    stats.relevant = len(events)
    work_dir = opts.work_dir if opts else None
    pieces = work_dir is not None and opts is not None and opts.jobs > 1
    return _rendered(events, stats, work_dir, pieces=pieces)


def _rendered(events: list[Event], stats: ReadStats, work_dir: Path | None,
              pieces: bool = False) -> FileResult:
    """Render where the events were read, so parallel workers share the output work."""
    result = FileResult(events, stats)
    csv_text, jsonl_text = R.event_text(events)
    if pieces and events and work_dir is not None:
        result.events_pieces = _piece(work_dir, csv_text, jsonl_text)
    else:
        result.events_csv, result.events_jsonl = csv_text, jsonl_text
    return result


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


# The inputs and options of the run being read by a pool: forked workers inherit them, so a
# task is an index (pickling an InputItem and the options per input cost the parent ~0.2 ms).
_JOB: tuple[Sequence[InputItem], TimelineOptions] | None = None


def _read_indices(indices: Sequence[int]) -> list[FileResult]:
    """A worker's task: its inputs, read and rendered."""
    assert _JOB is not None
    items, opts = _JOB
    return [read_item(items[i], opts.parser, opts.product, opts.hash_inputs, opts)
            for i in indices]


def iter_read(items: Sequence[InputItem], opts: TimelineOptions) -> Iterator[FileResult]:
    """FileResults in input order. With --jobs N the parent is one of the N readers: N - 1
    forked workers take tasks of a few inputs from the front of the queue, and the parent,
    whenever the next result due is a worker's and not ready, reads the next input nobody has
    started (a parent that only waited on N workers would be an (N + 1)th process on N cores).
    Nothing is split in advance: on real logs a worker's results cost the parent little to
    take and it reads ~half the inputs; on a fleet of update events taking them costs it more
    and it reads fewer. Its results go to a piece file as a worker's do, so what it holds
    ahead is the events, not their text."""
    global _JOB
    if opts.jobs == 1 or len(items) < 2:  # read here: no worker piece files
        one = dataclasses.replace(opts, jobs=1)
        yield from (read_item(item, one.parser, one.product, one.hash_inputs, one)
                    for item in items)
        return
    import multiprocessing  # lazy: only with --jobs > 1 (~4 ms of start-up otherwise)
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    workers = min(opts.jobs, len(items)) - 1
    pending = deque(range(len(items)))  # inputs nobody has started, in order
    futures: dict[int, Future] = {}  # task index -> its future, until the parent takes it
    tasks: list[list[int]] = []
    task_of: dict[int, int] = {}
    _JOB = (items, opts)
    # Not multiprocessing.Pool: its worker-handler thread wakes on every result waiting in the
    # pipe and spins until the result thread has read it (~0.4 s of the parent's CPU on the
    # 1,792-file fleet).
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_worker_signals) as pool:
            try:
                taken = 0  # tasks whose results the parent has taken

                def submit_more() -> None:
                    # A few tasks per worker ahead of the parent, not all at once: results a
                    # worker finished early wait in the parent's memory until their turn.
                    while pending and len(tasks) < taken + _TASKS_AHEAD * workers:
                        # guided: tasks shrink as the queue empties, so the last one a worker
                        # holds (and the parent may wait on) is short; a few inputs each
                        # while it is long, as one per input costs a pipe round trip each
                        size = max(1, min(32, len(pending) // (8 * (workers + 1))))
                        task = [pending.popleft() for _ in range(min(size, len(pending)))]
                        for i in task:
                            task_of[i] = len(tasks)
                        tasks.append(task)
                        futures[len(tasks) - 1] = pool.submit(_read_indices, task)

                submit_more()
                ready: dict[int, FileResult] = {}
                mine: set[int] = set()
                held = 0  # events of the parent's inputs read ahead and not yet handed on
                for i in range(len(items)):
                    while i not in ready:
                        t = task_of.get(i)
                        future = futures.get(t) if t is not None else None
                        if future is not None and t is not None and (
                                future.done() or not pending or held > _READ_AHEAD_EVENTS):
                            ready.update(zip(tasks[t], future.result()))
                            del futures[t]  # its results are in `ready`
                            taken += 1
                            submit_more()
                        else:  # nobody has started input i, or the parent reads on meanwhile
                            j = pending.popleft()
                            mine.add(j)
                            ready[j] = read_item(items[j], opts.parser, opts.product,
                                                 opts.hash_inputs, opts)
                            held += len(ready[j].events)
                            submit_more()
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


_TASKS_AHEAD = 2  # tasks per worker submitted ahead of the one the parent waits for


def _worker_signals() -> None:
    """A ^C reaches the whole process group: the parent stops the run and the pool; a worker
    ends with its task instead of printing its own KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# Results read ahead wait in the parent beside what it has taken (their events lines too, until
# their turn): past this many events the parent waits for the worker instead of reading on.
_READ_AHEAD_EVENTS = 20_000


def _keep(ev: Event, opts: TimelineOptions) -> bool:
    if opts.devices and ev.device.lower() not in opts.devices:
        return False
    if ev.time is not None:
        day = ev.time.date()
        if (opts.start and day < opts.start) or (opts.end and day > opts.end):
            return False
    return True
