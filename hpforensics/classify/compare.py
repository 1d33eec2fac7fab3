"""The one masked comparison pass, through the C core `hpforensics.pagehash`.

If the extension is missing from a development checkout, a numpy equivalent with the same
result keeps the engine usable (and says so once in the log); installed builds ship the core.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)
_warned = False


@dataclass(frozen=True)
class Diff:
    pages: list[int]
    ranges: list[tuple[int, int]]


def _numpy_compare(a: bytes, b: bytes, page_size: int, mask: bytes | None) -> Diff:
    x = np.frombuffer(a, np.uint8)
    y = np.frombuffer(b, np.uint8)
    neq = x != y
    if mask is not None:
        m = np.unpackbits(np.frombuffer(mask, np.uint8), bitorder="little", count=len(x))
        neq &= ~m.astype(bool)
    idx = np.flatnonzero(neq)
    if not len(idx):
        return Diff([], [])
    brk = np.flatnonzero(np.diff(idx) > 1)
    starts = idx[np.r_[0, brk + 1]]
    ends = idx[np.r_[brk, len(idx) - 1]] + 1
    pages = np.unique(idx // page_size)
    return Diff(pages.tolist(), list(zip(starts.tolist(), ends.tolist())))


def compare(a: bytes, b: bytes, mask: bytes | None, page_size: int = 0x1000) -> Diff:
    """Differing pages and merged byte ranges of `a` vs `b`, masked bytes counting as equal."""
    global _warned
    try:
        # lazy: only this path uses it (kept off this module's import cost)
        from hpforensics import pagehash
    except ImportError:
        if not _warned:
            log.warning("hpforensics.pagehash (C core) not available: comparing with numpy")
            _warned = True
        return _numpy_compare(a, b, page_size, mask)
    result = pagehash.compare_pages(a, b, page_size=page_size, mask=mask)
    return Diff(list(result.pages), [(int(s), int(e)) for s, e in result.ranges])
