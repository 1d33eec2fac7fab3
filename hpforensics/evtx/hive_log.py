"""A dirty hive's transaction logs (.LOG1/.LOG2) replayed into a copy of it, in memory.

Windows writes registry changes to a transaction log first and to the hive file later (up to an
hour later, or never when the machine is copied live), so a hive taken from a running system is
usually dirty: its base block's sequence numbers differ and the newest values are in the logs.
Format and recovery rules: Maxim Suhanov, "Windows registry file format specification"
(github.com/msuhanov/regf), "Format of transaction log files" (new format: HvLE log entries with
Marvin32 hash-1 / hash-2) and "Multiple transaction log files":

- only a primary file with a valid base block whose sequence numbers differ is replayed;
- a log counts when its base block is a valid new-format one (file type 6, checksum right,
  sequence numbers equal); its entries start at its primary sequence number;
- logs are taken earliest entries first; a log applies when its first entry is not older than
  the primary file's secondary sequence number and, after another log, continues the chain
  (N + 1 after the last entry N applied);
- within a log, entries apply while their sequence numbers follow on; the first one that does
  not (an old, already applied entry, or the end of what was written) ends that log quietly;
- an entry that claims the next sequence number but fails a hash or a bound stops the replay:
  a warning naming the log and the entry's offset, the entries before it kept;
- the image grows to each applied entry's hive bins data size; the base block is then made
  clean (sequence numbers = the last entry's, hive bins data size, flag bit 0, checksum).

The primary file and the logs are only read: the result is a new bytearray. Old-format logs
(DIRT dirty vector, Windows XP-8) are not replayed: said so, the hive read as it is.
"""
from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

from hpforensics.evtx.hive_file import BASE, CHECKSUM_AT, HEAD, base_block, xor32
from hpforensics.evtx.marvin32 import marvin32

log = logging.getLogger(__name__)

LOG_HEAD = 512  # a log's copy of the base block (first sector)
LOG_SUFFIXES = (".log1", ".log2", ".log")
_ENTRY = struct.Struct("<4sIIIIIQQ")  # HvLE, size, flags, sequence, bins size, pages, hash-1, -2
_REF = struct.Struct("<II")  # a dirty page's offset (from the hive bins data) and size
_FLAGS_AT = 144
FILE_TYPE_NEW_LOG, OLD_LOG_TYPES = 6, (1, 2)


@dataclass
class Replay:
    """What replaying the logs gave: the recovered image (None when nothing was applied), the
    entries applied per log, the problem that stopped it, and why nothing applied."""

    image: bytearray | None = None
    applied: list[tuple[str, int]] = field(default_factory=list)  # (log name, entries)
    problem: tuple[str, int, str] | None = None  # (log name, offset in it, reason)
    why: str = ""  # nothing applied: the reason (a log's state, an old format)
    old_format: bool = False  # applied: dirty pages of an old-format log (counted in `applied`)

    def note(self) -> str:
        """'2 log entries applied from SOFTWARE.LOG1[, 1 from SOFTWARE.LOG2]'."""
        (first, n), rest = self.applied[0], self.applied[1:]
        if self.old_format:
            return f"{n} dirty page{'s' if n != 1 else ''} applied from {first} (old format)"
        text = f"{n} log entr{'y' if n == 1 else 'ies'} applied from {first}"
        return ", ".join([text] + [f"{m} from {name}" for name, m in rest])


def is_dirty(primary: Any) -> bool:
    """A valid base block whose sequence numbers differ (what replay applies to)."""
    if len(primary) < BASE:
        return False
    block = base_block(primary)
    return block.signed and block.fields[1] != block.fields[2] and block.checksum_ok


def logs_beside(path: str) -> list[str]:
    """The transaction logs next to a hive file (`SOFTWARE.LOG1`, `.LOG2`, `.LOG`, any case)."""
    folder, name = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    want = {name.lower() + s: n for n, s in enumerate(LOG_SUFFIXES)}
    found = sorted((want[f.lower()], f) for f in names if f.lower() in want)
    return [os.path.join(folder, f) for _, f in found]


def _after(a: int, b: int) -> bool:
    """Sequence number a is b or later (32-bit, wrapping)."""
    return (a - b) & 0xFFFFFFFF <= 0x7FFFFFFF


def replay(primary: Any, logs: Sequence[tuple[str, Any]]) -> Replay:
    """Replay `logs` ((name, bytes) each, read-only) into a copy of the dirty `primary`."""
    out = Replay()
    secondary = HEAD.unpack_from(primary)[2]
    usable: list[tuple[int, str, Any]] = []
    old: list[tuple[int, str, Any]] = []
    states = []
    for name, data in logs:
        state = _log_state(data)
        if isinstance(state, str):
            states.append(f"{name}: {state}")
        else:
            (usable if state[0] == "new" else old).append((state[1], name, data))
    if old and not usable:
        return _replay_old(primary, old, states)
    # earliest entries first: a log's start is its base block's sequence number
    usable.sort(key=lambda u: (u[0] - secondary) & 0xFFFFFFFF)
    image: bytearray | None = None
    head: tuple[int, int, int] | None = None  # (last sequence, bins size, flags) applied
    root = HEAD.unpack_from(primary)[8]
    for start, name, data in usable:
        if not _after(start, secondary):
            states.append(f"{name}: its entries ({start}...) are older than the hive's "
                          f"({secondary})")
            continue
        if head is not None and start != (head[0] + 1) & 0xFFFFFFFF:
            continue  # does not continue the chain: older or a gap
        if image is None:
            image = bytearray(primary)
        count, head, problem = _apply(image, data, start, head)
        if count:
            out.applied.append((name, count))
            root = HEAD.unpack_from(data)[8]
        elif not problem:
            states.append(f"{name}: no entry with sequence number {start}")
        if problem:
            out.problem = (name, *problem)
            break
    if out.applied and head is not None and image is not None:
        _clean(image, head, root)
        out.image = image
    else:
        out.why = "; ".join(states) or "no usable log"
    log.debug("replay: applied %s, problem %s, %s", out.applied, out.problem, out.why)
    return out


def _log_state(data: Any) -> tuple[str, int] | str:
    """('new', its first sequence number) or ('old', its last written time), or why the log
    cannot be used."""
    if len(data) < LOG_HEAD:
        return "empty" if not len(data) else f"{len(data)} bytes, shorter than a base block"
    block = base_block(data)
    _, seq1, seq2, written, _, _, kind = block.fields[:7]
    if not block.signed:
        return "not a transaction log (no regf signature)"
    if not block.checksum_ok:
        return "its base block checksum is wrong"
    if kind != FILE_TYPE_NEW_LOG and kind not in OLD_LOG_TYPES:
        return f"file type {kind} is not a transaction log"
    if seq1 != seq2:
        return f"its own sequence numbers differ ({seq1}, {seq2}): written in part"
    return ("new", seq1) if kind == FILE_TYPE_NEW_LOG else ("old", written)


def _apply(image: bytearray, data: Any, expected: int, head: tuple[int, int, int] | None
           ) -> tuple[int, tuple[int, int, int] | None, tuple[int, str] | None]:
    """Apply one log's entries from `expected` on: (entries applied, last (sequence, bins size,
    flags), (offset, reason) of the entry that stopped it)."""
    at, count, size_of = LOG_HEAD, 0, len(data)
    while at + _ENTRY.size <= size_of:
        sig, size, flags, seq, bins, pages, hash1, hash2 = _ENTRY.unpack_from(data, at)
        if sig != b"HvLE" or seq != expected:
            break  # the end of what was written, or older entries already applied
        problem = _bad_entry(data, at, size, bins, pages, hash1, hash2, len(image))
        if problem:
            return count, head, (at, problem)
        refs = [_REF.unpack_from(data, at + _ENTRY.size + 8 * i) for i in range(pages)]
        if len(image) < BASE + bins:
            image.extend(bytes(BASE + bins - len(image)))  # the hive grew
        src = at + _ENTRY.size + 8 * pages
        for offset, length in refs:
            image[BASE + offset:BASE + offset + length] = data[src:src + length]
            src += length
        count, head = count + 1, (seq, bins, flags)
        expected = (seq + 1) & 0xFFFFFFFF
        at += size
    return count, head, None


def _bad_entry(data: Any, at: int, size: int, bins: int, pages: int, hash1: int,
               hash2: int, current: int) -> str:
    """Why an entry that should come next cannot be applied ('' when it can)."""
    if size < _ENTRY.size or size % 512 or at + size > len(data):
        return f"log entry size {size:#x} is not a multiple of 512 within the file " \
               f"({len(data):#x} bytes)"
    if marvin32(data[at:at + 32]) != hash2:
        return "log entry header does not match its hash-2 (Marvin32): replay stopped here"
    if marvin32(data[at + _ENTRY.size:at + size]) != hash1:
        return "log entry pages do not match their hash-1 (Marvin32): replay stopped here"
    if not bins or bins % 4096:
        return f"log entry hive bins data size {bins:#x} is not a multiple of 4096"
    refs_end = _ENTRY.size + 8 * pages
    if not pages or refs_end > size:
        return f"log entry's {pages} dirty page references do not fit in it"
    total = refs_end
    for i in range(pages):
        offset, length = _REF.unpack_from(data, at + _ENTRY.size + 8 * i)
        total += length
        if offset + length > bins or total > size:
            return f"dirty page {i} ({offset:#x}, {length:#x} bytes) lies outside the hive " \
                   f"bins data ({bins:#x}) or the entry"
    if BASE + bins - current > total - refs_end:  # new hive bins are dirty, so they are logged
        return f"log entry grows the hive by {BASE + bins - current:#x} bytes but carries " \
               f"{total - refs_end:#x} bytes of pages"
    return ""


def _clean(image: bytearray, head: tuple[int, int, int], root: int) -> None:
    """Make the base block what Windows writes after a recovery: sequence numbers equal, the
    hive bins data size and flag bit 0 of the last entry applied, the log's root cell, checksum."""
    seq, bins, flags = head
    struct.pack_into("<II", image, 4, seq, seq)
    struct.pack_into("<I", image, 36, root)
    struct.pack_into("<I", image, 40, bins)
    old = struct.unpack_from("<I", image, _FLAGS_AT)[0]
    struct.pack_into("<I", image, _FLAGS_AT, (old & ~1) | (flags & 1))
    struct.pack_into("<I", image, CHECKSUM_AT, xor32(image[:CHECKSUM_AT]))


def _replay_old(primary: Any, logs: list[tuple[int, str, Any]], states: list[str]) -> Replay:
    """Old format (Windows XP-8): one log, the newest of those written since the hive's last
    write (its base block's last written time not older than the hive's); its dirty vector
    ('DIRT', one bit per 512-byte page of the hive bins data) names the pages that follow it."""
    out = Replay(old_format=True)
    _, _, _, written, *_, root, _, _ = HEAD.unpack_from(primary)
    fresh = [u for u in logs if u[0] >= written]
    states += [f"{name}: older than the hive (last written time)" for t, name, _ in logs
               if t < written]
    if not fresh:
        out.why = "; ".join(states)
        return out
    _, name, data = max(fresh, key=lambda u: u[0])  # ties: the first named (.LOG1)
    bins, root = HEAD.unpack_from(data)[9], HEAD.unpack_from(data)[8]
    bits = bins // 512
    if bins % 4096 or bytes(data[LOG_HEAD:LOG_HEAD + 4]) != b"DIRT":
        out.problem = (name, LOG_HEAD, "no dirty vector (DIRT) for a hive bins data size of "
                                       f"{bins:#x}: replay stopped here")
        out.why = "; ".join(states)
        return out
    vector = bytes(data[LOG_HEAD + 4:LOG_HEAD + 4 + bits // 8])
    at = -(-(LOG_HEAD + 4 + bits // 8) // 512) * 512  # the pages start at the next sector
    dirty = [i for i in range(bits) if vector[i // 8] >> (i % 8) & 1]
    if at + 512 * len(dirty) > len(data):
        out.problem = (name, at, f"{len(dirty)} dirty pages named, the log ends at "
                                 f"{len(data):#x}: replay stopped here")
        out.why = "; ".join(states)
        return out
    if BASE + bins - len(primary) > 512 * len(dirty):  # new hive bins are dirty, so logged
        out.problem = (name, 0, f"the log's hive bins data size {bins:#x} grows the hive by more "
                                "than its dirty pages: replay stopped here")
        out.why = "; ".join(states)
        return out
    image = bytearray(primary)
    if len(image) < BASE + bins:
        image.extend(bytes(BASE + bins - len(image)))
    for n, i in enumerate(dirty):
        image[BASE + 512 * i:BASE + 512 * (i + 1)] = data[at + 512 * n:at + 512 * (n + 1)]
    seq = HEAD.unpack_from(primary)[1]
    _clean(image, (seq, bins, struct.unpack_from("<I", data, _FLAGS_AT)[0]), root)
    out.image, out.applied = image, [(name, len(dirty))]
    return out
