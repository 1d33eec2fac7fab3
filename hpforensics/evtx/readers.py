"""EVTX readers: the Rust-backed `evtx` package (default) and python-evtx (alternative).

Both yield RawRecord and fill a ReadStats with what went wrong and where. The fast path, in
two steps: while the chunk headers are checked, a chunk in which none of the providers we read
(nor "hotpatch") appears anywhere is ruled out and never given to the parser (its records are
only counted); in the chunks that are parsed, a record that can matter for update compliance is
recognised on the parser's JSON string with substring tests before it is decoded, so the bulk
of a log (logons, service changes) costs a substring scan at most.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import re
from typing import Any, Callable, Iterator

import orjson

from hpforensics._evtxscan import decode, record_fields
from hpforensics.evidence import open_evidence
from hpforensics.evtx.chunks import (CHUNK_SIZE, FILE_HEADER_SIZE, ChunkScan, SelectedChunks,
                                     Wanted, scan_chunks)
from hpforensics.evtx.records import (RawRecord, ReadStats, filetime_datetime, flatten_json_data,
                                      parse_time, raw_from_xml, text_value)
from hpforensics.evtx.select import RecordSelector

log = logging.getLogger(__name__)

PARSERS = ("evtx", "evtx-json", "python-evtx")  # evtx-json: read_evtx(native=False)

# Which records can matter (normalise.py decides for good): these providers, with all their
# events or the listed IDs, and any record that mentions hotpatching.
ALL_EVENTS = frozenset({
    "Microsoft-Windows-WindowsUpdateClient", "Microsoft-Windows-Servicing",
    "Microsoft-Windows-WaaSMedic", "Microsoft-Windows-WaaSMedicSvc",
})
SOME_EVENTS = {
    "Microsoft-Windows-Kernel-General": frozenset({12, 13}),
    "Microsoft-Windows-Kernel-Power": frozenset({41}),
    "EventLog": frozenset({6005, 6006, 6008, 6009, 6013}),
    "USER32": frozenset({1074}),
    "User32": frozenset({1074}),
}
_RELEVANT_XML = re.compile(
    r'Name="(?:Microsoft-Windows-(?:WindowsUpdateClient|Servicing|WaaSMedic\w*|Kernel-General'
    r'|Kernel-Power)|EventLog|USER32|User32)"|(?i:hotpatch)'
)
_CHUNK_NO = re.compile(r"chunk number (\d+)")

def check_chunks(path: str, stats: ReadStats, wanted: Wanted | None = None,
                 hash_input: bool = False) -> ChunkScan:
    """Scan the headers and turn every problem into a warning that names file and offset;
    with `hash_input`, stats.sha256 is the file's SHA-256, taken on the same read."""
    digest = hashlib.sha256() if hash_input else None
    with open_evidence(path) as fh:
        scan = scan_chunks(fh, os.fstat(fh.fileno()).st_size, wanted, digest)
    if digest is not None:
        stats.sha256 = digest.hexdigest()
    if scan.header_problem:
        stats.warnings.append(f"{stats.source}: {scan.header_problem}")
    # Runs of chunks with the same damage (a zeroed stretch) make one warning, not one each.
    runs: list[list] = []
    for p in scan.problems:
        if runs and runs[-1][2] == p.reason and runs[-1][1].index + 1 == p.index:
            runs[-1][1] = p
        else:
            runs.append([p, p, p.reason])
    for first, last, reason in runs:
        if first is last:
            where = f"at offset {first.offset:#x}: chunk {first.index}"
        else:
            where = (f"at offset {first.offset:#x}: chunks {first.index}-{last.index} "
                     f"(to offset {last.offset + CHUNK_SIZE:#x})")
        stats.warnings.append(f"{stats.source} {where}: {reason}")
    return scan


def _parser_error(stats: ReadStats, scan: ChunkScan, exc: Exception,
                  view: SelectedChunks | None = None) -> None:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    m = _CHUNK_NO.search(text)
    if m:
        offset = FILE_HEADER_SIZE + int(m.group(1)) * CHUNK_SIZE
        if view is not None:  # the parser numbers the chunks of the view: name the real one
            offset = view.real_offset(int(m.group(1)))
            text = _CHUNK_NO.sub(f"chunk number {(offset - FILE_HEADER_SIZE) // CHUNK_SIZE}", text)
        if any(p.offset == offset for p in scan.problems):
            return  # already reported, with the reason, by the header scan
        stats.warnings.append(f"{stats.source} at offset {offset:#x}: {text}")
    else:
        stats.warnings.append(f"{stats.source}: {text}")


def json_relevant(text: str) -> bool:
    """The cheap test on the parser's JSON string: provider (and ID), then hotpatch mentions.

    This runs on every record, so it is plain substring searches (a regex costs ~30x more),
    and the mention search covers the event data only, not the System block: 'atch'/'ATCH'
    catch every spelling of hotpatch and are rare enough that the exact, case-insensitive test
    behind them costs nothing."""
    start = text.find('"Name":"')  # the first Name attribute is the Provider's
    if start < 0:
        start = 0
    else:
        start += 8
        name = text[start:text.find('"', start)]
        if name in ALL_EVENTS:
            return True
        ids = SOME_EVENTS.get(name)
        if ids is not None and _json_event_id(text) in ids:
            return True
    data = text.find('"EventData":', start)
    if data < 0:
        data = text.find('"UserData":', start)
        if data < 0:
            return False
    if text.find("atch", data) >= 0 or text.find("ATCH", data) >= 0:
        return "hotpatch" in text[data:].lower()
    return False


def provider_relevant(text: str) -> bool:
    """json_relevant() without the hotpatch-mention scan, for files where no chunk mentions it."""
    start = text.find('"Name":"')
    if start < 0:
        return False
    start += 8
    name = text[start:text.find('"', start)]
    if name in ALL_EVENTS:
        return True
    ids = SOME_EVENTS.get(name)
    return ids is not None and _json_event_id(text) in ids


def _json_event_id(text: str) -> int:
    at = text.find('"EventID":')
    if at < 0:
        return -1
    at += 10
    if text[at] == "{":  # {"#attributes":{"Qualifiers":..},"#text":6005}
        at = text.find('"#text":', at) + 8
    end = at
    while text[end].isdigit():
        end += 1
    return int(text[at:end]) if end > at else -1


def raw_from_json(text: str, stamp: str | None = None) -> RawRecord:
    """`stamp`: the record header's time, when the caller has it (else TimeCreated).

    The common shape (plain System fields, flat EventData, no UserData) is read in C
    (`_evtxscan.record_fields`, ~5x cheaper); anything else by `json_record` below."""
    decoded = orjson.loads(text)
    if stamp is not None:
        fields = record_fields(decoded)
        if fields is not None:
            provider, eid, rid, channel, computer, data = fields
            return RawRecord(provider, eid, rid, parse_time(stamp), channel, computer, data)
    return json_record(decoded, text, stamp)


def json_record(decoded: Any, text: str, stamp: str | None = None) -> RawRecord:
    """raw_from_json()'s walk in Python: every shape the parser's JSON can take."""
    event = decoded.get("Event") if isinstance(decoded, dict) else None
    if not isinstance(event, dict):  # <Event/> or <Event>text</Event> in a damaged chunk
        raise ValueError(f"record without an <Event> element ({text[:60]!r})")
    system = event.get("System")
    system = system if isinstance(system, dict) else {}
    provider = system.get("Provider") or {}
    attrs = provider.get("#attributes") or {} if isinstance(provider, dict) else {}
    eid = system.get("EventID")
    if isinstance(eid, dict):
        eid = eid.get("#text")
    if stamp is None:
        created = system.get("TimeCreated") or {}
        attrs_t = (created.get("#attributes") or {}) if isinstance(created, dict) else {}
        stamp = attrs_t.get("SystemTime", "")
    rec = RawRecord(  # provider, event_id, record_id, time, channel, computer
        attrs.get("Name") or attrs.get("EventSourceName") or "",
        int(eid or 0),
        int(system.get("EventRecordID") or 0),
        parse_time(stamp),
        system.get("Channel") or "",
        system.get("Computer") or "",
    )
    data = event.get("EventData")
    if data and type(data) is dict and _flat(data):
        # the common case, named <Data> values only: no recursion needed
        rec.data = {k: v if type(v) is str else text_value(v)
                    for k, v in data.items() if k not in _NOT_DATA}
    elif data:
        flatten_json_data(data, rec.data, "")
    if event.get("UserData"):
        flatten_json_data(event["UserData"], rec.data, "UserData")
    return rec


_NOT_DATA = frozenset({"#attributes", "Binary"})


def _flat(data: dict) -> bool:
    for key, value in data.items():
        if key == "#text" or type(value) is dict or type(value) is list:
            return False
    return True


def read_evtx(path: str, stats: ReadStats, *, relevant_only: bool = True,
              threads: int = 1, hash_input: bool = False,
              native: bool = True) -> Iterator[RawRecord]:
    """Records of one EVTX file through the Rust parser; damaged chunks become warnings.
    `hash_input`: fill stats.sha256 from the integrity scan's read of the file.

    `native`: in an undamaged file, a chunk whose selected records all have the common shape
    (see csrc/evtxscan/decode.c) is read by the C decoder instead of the parser, which renders
    and Python decodes ~2 KB of JSON per record; the records are the same (a test compares
    both ways on every record of the real logs and the sample fleet), in the same order."""
    test = RecordSelector(ALL_EVENTS, SOME_EVENTS) if relevant_only else None
    scan = check_chunks(path, stats, test, hash_input)
    if scan.header_problem.startswith("not an EVTX"):
        return
    stats.expected_records = scan.records_in_intact_chunks
    # An undamaged file is parsed only in the records the selector kept (the others are
    # counted); a damaged one whole, so that the parser reports on every chunk as before.
    select = test is not None and not scan.damaged
    relevant = provider_relevant if select and not test.mentions else json_relevant  # type: ignore[union-attr]
    with open_evidence(path) as fh:  # read-only handle: the parser never opens the path itself
        if not select:
            yield from _parsed(fh, None, stats, scan, threads, relevant_only, relevant)
            return
        stats.records += scan.unwanted_records + scan.skipped_records
        yield from _selected(fh, stats, scan, threads, relevant, scan.native if native else {})


def _selected(fh: io.BufferedIOBase, stats: ReadStats, scan: ChunkScan, threads: int,
              relevant: Callable[[str], bool],
              native: dict[int, tuple[tuple[int, ...], int]]) -> Iterator[RawRecord]:
    """The kept chunks in file order: each the decoder can read (`native`), read by it; the
    runs of the others by the parser, so the records come out in the parser's order."""
    chunk = bytearray(CHUNK_SIZE)
    run: list[int] = []
    for offset in scan.wanted_offsets:
        picked = native.get(offset)
        selected, parsed = picked or ((), 0)
        records: list[RawRecord] | None = [] if picked and not selected else None
        if selected:
            fh.seek(offset)
            if fh.readinto(chunk) == CHUNK_SIZE:
                records = decode(chunk, selected, RawRecord)
        if records is None:  # another shape somewhere in the chunk: the parser reads it
            run.append(offset)
            continue
        yield from _parsed_run(fh, run, stats, scan, threads, relevant)
        run = []
        stats.records += parsed  # the records the parser would have returned
        yield from records
    yield from _parsed_run(fh, run, stats, scan, threads, relevant)


def _parsed_run(fh: io.BufferedIOBase, offsets: list[int], stats: ReadStats, scan: ChunkScan,
                threads: int, relevant: Callable[[str], bool]) -> Iterator[RawRecord]:
    """The parser over these kept chunks: the file itself when they are all of it, unpatched,
    else a read-only view of them with the selector's size patches."""
    if not offsets:
        return
    if (scan.unwanted_records or any(scan.patches.get(o) for o in offsets)
            or len(offsets) < scan.chunks_present):
        view = SelectedChunks(fh, offsets, scan.patches)
        yield from _parsed(view, view, stats, scan, threads, True, relevant)
    else:
        yield from _parsed(fh, None, stats, scan, threads, True, relevant)


def _parsed(source: io.RawIOBase | io.BufferedIOBase, view: SelectedChunks | None, stats: ReadStats,
            scan: ChunkScan, threads: int, relevant_only: bool,
            relevant: Callable[[str], bool]) -> Iterator[RawRecord]:
    """The records the Rust parser reads from `source` (the file, or a view of some of its
    chunks), each relevant one as a RawRecord; the parser's errors become warnings."""
    # lazy: the parser only when a log is read with it
    from evtx import PyEvtxParser

    try:
        # Iterator[Any]: the binding's stub says a record may be None; it never yields one
        records: Iterator[Any] = PyEvtxParser(source, number_of_threads=threads).records_json()
    except (RuntimeError, OSError, ValueError) as exc:  # e.g. cut inside its 4 KiB header
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        stats.warnings.append(f"{stats.source} at offset 0x0: {reason}")
        return
    count = 0
    try:
        while True:
            # The iterator stays usable after it raises for a bad chunk: catch outside the
            # loop so the per-record path has no try block of its own.
            try:
                for item in records:
                    count += 1
                    text = item["data"]
                    if relevant_only and not relevant(text):
                        continue
                    # the record header's FILETIME has the 100 ns digits (TimeCreated is
                    # rounded to microseconds); truncating it agrees with every other reader
                    yield raw_from_json(text, item["timestamp"])
                break
            except (RuntimeError, OSError, ValueError) as exc:
                _parser_error(stats, scan, exc, view)
    finally:
        stats.records += count


def _filetime(value: int) -> dt.datetime | None:
    """FILETIME (100 ns since 1601) to an aware datetime, truncated to microseconds."""
    return filetime_datetime(value) if value else None


def table_loop(chunk: bytes) -> int | None:
    """Chunk-relative offset where a chain of the chunk's string (64 buckets at 0x80) or template
    (32 at 0x180) hash table comes back to a node it already visited, else None. python-evtx
    follows these `next_offset` chains with `while ofs > 0` and never returns on a loop."""
    for table, buckets in ((0x80, 64), (0x180, 32)):
        for i in range(buckets):
            at = table + 4 * i
            ofs = int.from_bytes(chunk[at:at + 4], "little")
            seen: set[int] = set()
            while 0 < ofs <= len(chunk) - 4:
                if ofs in seen:
                    return ofs
                seen.add(ofs)
                ofs = int.from_bytes(chunk[ofs:ofs + 4], "little")
    return None


def read_python_evtx(path: str, stats: ReadStats, *, relevant_only: bool = True,
                     hash_input: bool = False) -> Iterator[RawRecord]:
    """Records through python-evtx; records it cannot reach are counted and reported.
    `hash_input`: fill stats.sha256 from the integrity scan's read of the file."""
    import xml.etree.ElementTree as ET  # only this reader renders XML

    # lazy: the parser only when a log is read with it
    import Evtx.Evtx as pyevtx

    scan = check_chunks(path, stats, hash_input=hash_input)
    if scan.header_problem.startswith("not an EVTX"):
        return
    stats.expected_records = scan.records_in_intact_chunks
    search = _RELEVANT_XML.search
    with pyevtx.Evtx(path) as log_file, open_evidence(path) as raw:
        for chunk in log_file.chunks():
            raw.seek(chunk.offset())
            loop = table_loop(raw.read(CHUNK_SIZE))
            if loop is not None:
                stats.warnings.append(
                    f"{stats.source} at offset {chunk.offset() + loop:#x}: this chunk's string or "
                    f"template table loops back on itself; python-evtx would never return, chunk "
                    f"skipped (the default parser, --parser evtx, reads it)")
                continue
            try:
                for record in chunk.records():
                    text = record.xml()
                    stats.records += 1
                    if relevant_only and search(text) is None:
                        continue
                    rec = raw_from_xml(ET.fromstring(text))
                    rec.time = _filetime(record.unpack_qword(0x10)) or rec.time
                    yield rec
            except Exception as exc:  # noqa: BLE001 - python-evtx raises anything on bad data
                stats.warnings.append(
                    f"{stats.source} at offset {chunk.offset():#x}: python-evtx: {exc}")
    lost = (stats.expected_records or 0) - stats.records
    if lost > 0:
        stats.warnings.append(
            f"{stats.source}: python-evtx read {stats.records} of the {stats.expected_records} "
            f"records the intact chunks hold ({lost} lost); use the default parser (--parser evtx)"
        )
