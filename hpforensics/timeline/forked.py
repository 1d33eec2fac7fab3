"""fn(item) for each item, in forked workers that inherit the data fn reads.

For the serial end of a --jobs run: per device, lifecycles, eligibility and compliance read the
device's events, which are in the parent's memory after reading. Forked workers see them as
they are (copy-on-write); only the item's index goes to a worker and only fn's result comes
back, so no event is pickled.
"""
from __future__ import annotations

import gc
from typing import Any, Callable, Sequence, TypeVar

from hpforensics.timeline.reading import _worker_signals

T = TypeVar("T")
R = TypeVar("R")

# What the workers of the pool being run call, set before they are forked.
_TASK: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def _call(i: int) -> Any:
    assert _TASK is not None
    fn, items = _TASK
    return fn(items[i])


def map_forked(fn: Callable[[T], R], items: Sequence[T], jobs: int,
               cost: Callable[[T], int]) -> list[R]:
    """[fn(x) for x in items], computed by min(jobs, len(items)) forked workers while the
    parent waits (it has nothing else to do meanwhile), the costliest items (by `cost`) first,
    so that the last to finish is a small one. An exception of fn reaches the caller; items not
    started are dropped. With one job, or one item, fn runs here."""
    global _TASK
    workers = min(jobs, len(items))
    if workers < 2:
        return [fn(x) for x in items]
    # lazy: only with --jobs > 1 (multiprocessing costs start-up otherwise)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    order = sorted(range(len(items)), key=lambda i: -cost(items[i]))
    _TASK = (fn, items)
    # Objects that exist now are left out of the workers' collections: a collection walking the
    # parent's millions of events would write to (and so copy) every page that holds them.
    gc.freeze()
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_worker_signals) as pool:
            try:
                futures = {i: pool.submit(_call, i) for i in order}
                return [futures[i].result() for i in range(len(items))]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        _TASK = None
        gc.unfreeze()
