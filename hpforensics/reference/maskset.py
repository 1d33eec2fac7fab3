"""The loader-written byte ranges of one image, grouped by kind, held as numpy arrays.

Built once per (image, base) and queried for: the bitmap the C core takes, the sorted
(start, end, kind) list the shared interface exposes, and "which kinds cover this range".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from hpforensics.reference.kinds import FIXED_VALUE, MaskKind


@dataclass(eq=False)
class MaskGroup:
    kind: MaskKind
    starts: np.ndarray  # int64 RVAs
    widths: np.ndarray  # int64 byte counts, same length

    @property
    def ends(self) -> np.ndarray:
        return self.starts + self.widths

    @cached_property
    def _sorted(self) -> tuple[np.ndarray, np.ndarray, int]:
        order = np.argsort(self.starts, kind="stable")
        return self.starts[order], self.ends[order], int(self.widths.max())

    def overlapping(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the ranges overlapping [start, end): two binary searches."""
        s, e, widest = self._sorted
        lo = int(np.searchsorted(s, start - widest, side="right"))
        hi = int(np.searchsorted(s, end, side="left"))
        hit = e[lo:hi] > start
        return s[lo:hi][hit], e[lo:hi][hit]


@dataclass
class MaskSet:
    size: int
    groups: list[MaskGroup] = field(default_factory=list)

    def add(self, kind: MaskKind, starts, width) -> None:
        s = np.asarray(starts, np.int64).ravel()
        w = np.broadcast_to(np.asarray(width, np.int64), s.shape).copy()
        keep = (s >= 0) & (w > 0) & (s < self.size)
        s, w = s[keep], np.minimum(w[keep], self.size - s[keep])
        if len(s):
            self.groups.append(MaskGroup(kind, s, w))

    def group(self, kind: MaskKind) -> MaskGroup | None:
        found = [g for g in self.groups if g.kind == kind]
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        return MaskGroup(kind, np.concatenate([g.starts for g in found]),
                         np.concatenate([g.widths for g in found]))

    def bitmap(self, kinds=None, base: np.ndarray | None = None) -> np.ndarray:
        """Packed bitmap (uint8, LSB first) of the groups of `kinds`, OR-ed into `base`.
        Only the masked bytes are touched, so it costs O(masked), not O(image)."""
        out = base.copy() if base is not None else np.zeros((self.size + 7) // 8, np.uint8)
        for g in self.groups:
            if kinds is not None and g.kind not in kinds:
                continue
            for w in np.unique(g.widths).tolist():
                s = g.starts[g.widths == w]
                idx = (s[:, None] + np.arange(w)).ravel()
                idx = idx[idx < self.size]
                np.bitwise_or.at(out, idx >> 3, (1 << (idx & 7)).astype(np.uint8))
        return out

    def runtime_kinds(self) -> set[MaskKind]:
        return {g.kind for g in self.groups if g.kind not in FIXED_VALUE}

    def ranges(self) -> list[tuple[int, int, str]]:
        """Sorted (start, end, kind) with adjacent or overlapping ranges of one kind merged."""
        out: list[tuple[int, int, str]] = []
        for g in self.groups:
            order = np.argsort(g.starts, kind="stable")
            s, e = g.starts[order], g.ends[order]
            if not len(s):
                continue
            run_end = np.maximum.accumulate(e)
            brk = np.flatnonzero(s[1:] > run_end[:-1]) + 1
            starts = s[np.r_[0, brk]]
            ends = run_end[np.r_[brk - 1, len(s) - 1]]
            out.extend((int(a), int(b), g.kind.value) for a, b in zip(starts, ends))
        out.sort()
        return out

    def span(self, kind: MaskKind, start: int, end: int) -> tuple[int, int]:
        """[start, end) widened to whole ranges of `kind` that overlap it."""
        for g in self.groups:
            if g.kind != kind:
                continue
            s, e = g.overlapping(start, end)
            if len(s):
                start = min(start, int(s.min()))
                end = max(end, int(e.max()))
        return start, end

    def kinds_in(self, start: int, end: int) -> list[MaskKind]:
        """Kinds with a range overlapping [start, end), most specific (runtime) first."""
        hits = []
        for g in self.groups:
            if len(g.overlapping(start, end)[0]):
                hits.append(g.kind)
        hits.sort(key=lambda k: (k in FIXED_VALUE, k.value))
        return list(dict.fromkeys(hits))

