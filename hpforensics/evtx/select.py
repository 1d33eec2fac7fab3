"""Record selection: hand the Rust parser only the records of a chunk that can matter.

The C selector (csrc/evtxscan) reads each record's provider name and event ID through its
template and searches for "hotpatch" in any case; it keeps a superset of what `json_relevant()`
keeps (anything it cannot read is kept). The parser walks a chunk record by record, stepping by
each record's size field and reading a record's Binary XML only up to its end-of-stream token, so
a kept record whose size is stretched over the skipped records that follow it makes the parser
step over them unread. Templates and names stay at their chunk offsets, so kept records that
refer to a template defined inside a skipped record still resolve. The evidence is never
changed: `SelectedChunks` applies these size patches to the bytes it hands the parser.
"""
from __future__ import annotations

from typing import Mapping

from hpforensics import _evtxscan
from hpforensics.evtx.chunks import CHUNK_HEADER_SIZE, RECORD_SIZE, RecordPick


class RecordSelector:
    """`scan_chunks(wanted=...)` callback: a RecordPick per intact chunk, True (parse the chunk
    whole) where the C walk met something the parser may read differently."""

    def __init__(self, all_events: frozenset[str], some_events: Mapping[str, frozenset[int]]):
        rules: list[tuple[bytes, tuple[int, ...]]] = [
            (n.encode("ascii"), ()) for n in sorted(all_events)]
        rules += [(n.encode("ascii"), tuple(sorted(ids))) for n, ids in sorted(some_events.items())]
        self._rules = _evtxscan.rules(rules)
        self.mentions = False  # some kept record mentions hotpatch (or a chunk went whole)

    def __call__(self, chunk: bytearray) -> RecordPick | bool:
        got = _evtxscan.select(chunk, self._rules)
        if got is None:
            self.mentions = True
            return True
        records, _end, _kept, mentions, native, parsed, patches = got
        self.mentions |= mentions
        # pick() below, done in C (~100 us a chunk of update events in Python)
        return RecordPick(records, parsed, patches, native)


def pick(chunk: bytes | bytearray, records: int, end: int, kept: tuple[int, ...]) -> RecordPick:
    """Size patches that make the parser read exactly the kept records (and the first record
    of the chunk, where every walk starts). The selector's C side computes the same (a test
    compares both on every chunk of the real logs); this is their definition."""
    if not kept:
        return RecordPick(records, 0, ())
    starts = list(kept) if kept[0] == CHUNK_HEADER_SIZE else [CHUNK_HEADER_SIZE, *kept]
    patches = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else end
        if RECORD_SIZE.unpack_from(chunk, start + 4)[0] != stop - start:
            patches.append((start, stop - start))
    return RecordPick(records, len(starts), tuple(patches))
