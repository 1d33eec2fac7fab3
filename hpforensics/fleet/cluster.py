"""Where fleet work runs: in this process, on a local Dask cluster the command starts and stops,
or on a Dask distributed scheduler that is already running.

Dask is imported only when a cluster is asked for, so single-process runs never load it. Each
task is retried once: an exception by Dask's `retries=1`, a worker that dies by the scheduler's
`allowed-failures` (set to 1 for the local cluster; a remote scheduler keeps its own setting).
A task that still fails becomes a `TaskFailure`; every other task's result is kept.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import traceback
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from hpforensics.errors import UsageError

log = logging.getLogger(__name__)

# Tasks in flight at once per worker thread: enough to keep workers busy, few enough that the
# driver's memory does not grow with the fleet (futures and results are released as they land).
IN_FLIGHT_PER_THREAD = 4
LOCAL_ALLOWED_FAILURES = 1  # a task that kills its worker is run once more, then reported


@dataclass(frozen=True)
class ClusterSpec:
    """`--scheduler ADDRESS` or `--workers N`; neither: this process."""

    scheduler: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.scheduler and self.workers:
            raise UsageError("--scheduler and --workers are exclusive: give one")
        if self.workers is not None and self.workers < 1:
            raise UsageError("--workers must be at least 1")

    @property
    def distributed(self) -> bool:
        return bool(self.scheduler or self.workers)

    def describe(self) -> str:
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        if self.workers:
            return f"local Dask cluster, {self.workers} worker process(es)"
        return "this process"


@dataclass
class Task:
    key: str  # what the task is about: a device folder, a file, a dump
    fn: Callable[..., Any]
    args: tuple


@dataclass
class TaskFailure:
    key: str
    error: str  # one line
    kind: str  # "exception" / "worker-died"
    attempts: int
    detail: str = ""  # traceback, when there is one


@contextlib.contextmanager
def open_client(spec: ClusterSpec) -> Iterator[Any]:
    """A dask.distributed Client for the spec (None when running in this process)."""
    if not spec.distributed:
        yield None
        return
    try:
        # lazy: optional [fleet] extra
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--scheduler/--workers need Dask: "
                         "pip install 'hpforensics[fleet]'") from None
    if spec.workers:
        # worker-saturation 1.0: a worker holds only the task it runs, so a task that kills its
        # worker takes no queued bystander down with it
        with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
                              "distributed.scheduler.worker-saturation": 1.0}):
            with warnings.catch_warnings():  # "port 8787 in use": the dashboard is off anyway
                warnings.simplefilter("ignore", UserWarning)
                cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
            client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        # Dask's connect timeout (distributed.comm.timeouts.connect, 30 s unless configured)
        client = Client(spec.scheduler,
                        timeout=dask.config.get("distributed.comm.timeouts.connect"))
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {spec.scheduler}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


def _failure(key: str, exc: BaseException, attempts: int, died_attempts: int = 2) -> TaskFailure:
    died = type(exc).__name__ == "KilledWorker"
    attempts = died_attempts if died else attempts
    message = (f"the worker process died running it ({attempts} attempts)" if died
               else f"{type(exc).__name__}: {exc}".splitlines()[0])
    detail = "" if died else "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return TaskFailure(key, message, "worker-died" if died else "exception", attempts, detail)


def run_tasks(client: Any, tasks: Iterable[Task], total: int,
              on_result: Callable[[Task, Any], None],
              on_failure: Callable[[Task, TaskFailure], None],
              progress: Callable[[int, int], None] | None = None) -> None:
    """Run every task (in this process when `client` is None), handing each result to
    `on_result` in completion order; failures (after one retry) go to `on_failure`;
    `progress(done, total)` after each task."""
    done = 0
    if client is None:
        for task in tasks:
            for attempt in (1, 2):
                try:
                    result = task.fn(*task.args)
                except Exception as exc:  # noqa: BLE001 - any failure of one task is reported
                    if attempt == 2:
                        on_failure(task, _failure(task.key, exc, attempt))
                    else:
                        log.warning("%s failed (%s), retrying once", task.key, exc)
                    continue
                on_result(task, result)
                break
            done += 1
            if progress:
                progress(done, total)
        return
    _run_distributed(client, iter(tasks), total, on_result, on_failure, progress)


def _run_distributed(client: Any, tasks: Iterator[Task], total: int,
                     on_result: Callable[[Task, Any], None],
                     on_failure: Callable[[Task, TaskFailure], None],
                     progress: Callable[[int, int], None] | None) -> None:
    # lazy: optional [fleet] extra
    from distributed import as_completed

    threads = max(1, sum(client.nthreads().values()))
    window = max(8, IN_FLIGHT_PER_THREAD * threads)
    pending: dict[str, Task] = {}
    serial = itertools.count()
    try:  # how often the scheduler runs a task whose worker dies before it gives up
        died_attempts = 1 + int(client.run_on_scheduler(_allowed_failures))
    except Exception:  # noqa: BLE001 - only the failure report's attempt count depends on it
        died_attempts = 1 + LOCAL_ALLOWED_FAILURES

    def submit() -> Any | None:
        task = next(tasks, None)
        if task is None:
            return None
        fut = client.submit(task.fn, *task.args, retries=1, pure=False,
                            key=f"hpf-{_safe(task.key)}-{next(serial)}-{uuid.uuid4().hex[:8]}")
        pending[fut.key] = task
        return fut

    first = [f for f in (submit() for _ in range(window)) if f is not None]
    stream = as_completed(first)
    done = 0
    for fut in stream:
        task = pending.pop(fut.key)
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - reported per task, the run goes on
            on_failure(task, _failure(task.key, exc, 2, died_attempts))
        else:
            on_result(task, result)
        fut.release()
        done += 1
        if progress:
            progress(done, total)
        nxt = submit()
        if nxt is not None:
            stream.add(nxt)


def _allowed_failures(dask_scheduler: Any = None) -> int:
    return dask_scheduler.allowed_failures


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[-60:]


@contextlib.contextmanager
def progress_bar(what: str, total: int,
                 enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr over work done / total (devices, dumps)."""
    # lazy: rich only where a terminal is drawn on
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not enabled or not console.is_terminal) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def describe_failures(failures: Sequence[TaskFailure]) -> str:
    return "; ".join(f"{f.key}: {f.error}" for f in failures[:5]) + (
        f" (and {len(failures) - 5} more)" if len(failures) > 5 else "")


def failures_warning(failures: Sequence[TaskFailure], listing, what: str) -> str:
    """The one warning line for tasks that failed twice: how many, where they are listed, the
    first few reasons. `what` names a task: "image", "task"."""
    return (f"hpforensics: warning: {len(failures)} {what}(s) failed after a retry, listed in "
            f"{listing}: {describe_failures(failures)}")
