"""ETW trace files (.etl) to RawRecords: dissect.etl reads the container, etw_schema the fields.

A trace is a run of equal-size buffers (WMI_BUFFER_HEADER + records). dissect.etl follows each
buffer's BufferSize to the next one and stops at the first error, so one damaged buffer would
lose every later event. Here the buffers are walked by the trace's buffer size instead, each
header is checked (size, bytes in use, file end) before dissect.etl reads its records, and a
damaged buffer costs only its own events: one warning names the file and the offset, and the
buffers after it are still read. A file cut short keeps the complete records of its last,
partial buffer.

Mapping, as for an .evtx record: provider name from the manifest (else the provider GUID),
event ID and version from the EVENT_DESCRIPTOR, time from the trace clock (exact, in
FILETIME units), record number = the record's position in the file (the logfile header is
record 1), channel = the admin log the channel id names (System, Application, Security; else
"ETW"), computer = "" (traces carry none: the collection's device name is used), event data
by name. TraceLogging events (no manifest: the schema is an extended data item) take their
provider name from the provider traits, their fields from the schema, and as the message their
name followed by name=value pairs. Only EVENT_HEADER records become records; kernel (system,
perfinfo) and WPP records are counted, not decoded.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import struct
import uuid
from typing import Iterator

from hpforensics.evidence import open_evidence
from hpforensics.evtx.etw_schema import WELL_KNOWN_CHANNELS, decode, provider
from hpforensics.evtx.etw_tracelogging import (EXT_PROV_TRAITS, EXT_SCHEMA_TL, decode_event,
                                               parse_schema, provider_name)
from hpforensics.evtx.readers import ALL_EVENTS, SOME_EVENTS
from hpforensics.evtx.records import RawRecord, ReadStats

log = logging.getLogger(__name__)

_BUFFER_HEADER = struct.Struct("<IIIiqqQHHIIHH")  # WMI_BUFFER_HEADER up to BufferType
_BUFFER_HEADER_SIZE = 0x48
_MARKER_END = 0xFFFFFFFF  # filler after the last record of a buffer
_FLAG_COMPRESSED = 0x0040
_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)
_DAY = 864_000_000_000  # FILETIME units
_MIN_BUFFER, _MAX_BUFFER = 0x400, 64 << 20
# "hotpatch" in any case, 8-bit or UTF-16LE, anywhere in the record (schema included)
_MENTION = re.compile(rb"(?i)h\x00?o\x00?t\x00?p\x00?a\x00?t\x00?c\x00?h")


def read_etl(path: str, stats: ReadStats, *, relevant_only: bool = True) -> Iterator[RawRecord]:
    """`relevant_only`: as for .evtx, give only the records that can matter (the providers and
    IDs normalise.py reads, and any record whose bytes mention hotpatch); all are counted."""
    from dissect.etl.etl import ETL, Buffer

    with open_evidence(path) as fh:
        file_size = os.fstat(fh.fileno()).st_size
        try:
            etl = ETL(fh)
        except Exception as exc:  # noqa: BLE001 - dissect raises many types on foreign data
            stats.warnings.append(f"{stats.source} at offset 0x0: not readable as an ETW trace "
                                  f"by dissect.etl ({type(exc).__name__}: {exc}); no events "
                                  f"taken from it")
            return
        stride = _stride(fh, etl, file_size)
        if not _MIN_BUFFER <= stride <= _MAX_BUFFER or stride % 8:
            stats.warnings.append(f"{stats.source} at offset 0x0: not readable as an ETW trace: "
                                  f"buffer size {stride:#x} in its header; no events taken")
            return
        walk = _Walk(etl, stats, file_size, relevant_only)
        # A trace copied while its session was still running says 0 buffers written: then
        # the file's length says how many there are.
        expected = etl.logfile_header.buffers_written or file_size // stride
        for index in range(expected):
            offset = index * stride
            if offset + _BUFFER_HEADER_SIZE > file_size:
                stats.warnings.append(
                    f"{stats.source} at offset {offset:#x}: the trace ends after {index} of its "
                    f"{expected} buffers (file cut short); the events before were kept")
                return
            problem = _check_buffer(fh, offset, stride, file_size)
            if problem:
                if index == 0:  # its logfile header was read all the same: still record 1
                    walk.number = stats.records = 1
                stats.warnings.append(f"{stats.source} at offset {offset:#x}: buffer {index} "
                                      f"{problem}; its events were skipped, the other buffers read")
                continue
            yield from walk.records(Buffer(etl, offset), index)
            if walk.cut:
                stats.warnings.append(
                    f"{stats.source} at offset {walk.cut:#x}: the trace ends inside buffer "
                    f"{index} of {expected} (file cut short); the complete events were kept")
                return
        if file_size < expected * stride:
            stats.warnings.append(
                f"{stats.source} at offset {file_size:#x}: the trace ends inside the unused "
                f"space of its last buffer (file cut short); no event was lost")


def _stride(fh, etl, file_size: int) -> int:
    """The trace's buffer size: the first buffer's, or the logfile header's when only that
    one leads to a buffer that says the same (a damaged first buffer header)."""
    first, logged = etl.buffer_size, etl.logfile_header.header.BufferSize
    for size in (first, logged):
        if _MIN_BUFFER <= size <= _MAX_BUFFER and size + 4 <= file_size:
            fh.seek(size)
            if int.from_bytes(fh.read(4), "little") == size:
                return size
    return first


def _check_buffer(fh, offset: int, stride: int, file_size: int) -> str:
    """Why a buffer header cannot be trusted ('' when it can). A file cut inside the
    buffer is not a header problem: its complete records are still read."""
    fh.seek(offset)
    (size, saved, _cur, _ref, _ts, _seq, _clock, _cpu, _logger, _state, used, flags,
     _type) = _BUFFER_HEADER.unpack(fh.read(_BUFFER_HEADER.size))
    if size != stride:
        return f"has a bad header: BufferSize {size:#x}, the trace's buffers are {stride:#x}"
    if not _BUFFER_HEADER_SIZE <= used <= size or used % 8 and not flags & _FLAG_COMPRESSED:
        return f"has a bad header: {used:#x} bytes in use in a {size:#x}-byte buffer"
    return ""


class _Walk:
    """Record numbering and decoding across the buffers of one trace."""

    def __init__(self, etl, stats: ReadStats, file_size: int, relevant_only: bool) -> None:
        self.etl = etl
        self.relevant_only = relevant_only
        self.stats = stats
        self.file_size = file_size
        self.number = 0
        self.cut = 0  # file offset where a cut-short buffer's data ends
        self.pointer_size = etl.pointer_size

    def records(self, buf, index: int) -> Iterator[RawRecord]:
        from dissect.etl.exceptions import Error as DissectError
        from dissect.etl.headers.event import EventHeader

        data = buf.data
        if buf.offset + buf.filled_bytes > self.file_size:
            self.cut = buf.data_offset + len(data)
        pos = 0
        while pos + 4 <= len(data):
            if int.from_bytes(data[pos:pos + 4], "little") == _MARKER_END:
                return
            try:
                header = buf.read_record(pos).header
                size = header.size
                problem = "" if pos + size <= len(data) else \
                    f"a record of {size:#x} bytes overruns the buffer"
            except (DissectError, EOFError, ValueError, struct.error) as exc:
                problem = f"unreadable record ({type(exc).__name__}: {exc})"
            if problem:
                if self.cut:  # the file ends inside this record: said by the caller
                    return
                pos = self._resync(buf, index, pos, problem)
                continue
            self.number += 1
            self.stats.records += 1
            if isinstance(header, EventHeader):
                rec = self._raw(header, bytes(data[pos:pos + size]))
                if rec is not None:
                    yield rec
            pos += (size + 7) & ~7

    def _resync(self, buf, index: int, bad: int, why: str) -> int:
        """After a damaged record, the next 8-aligned place where an event header with a
        sane size and a time inside the trace starts (records after it are intact); the
        buffer's end when there is none. One warning either way."""
        data = buf.data
        pos = bad + 8
        while pos + 0x50 <= len(data) and not self._plausible(data, pos):
            pos += 8
        where = f"{self.stats.source} at offset {buf.data_offset + bad:#x}: buffer {index}: {why}"
        if pos + 0x50 > len(data):
            self.stats.warnings.append(f"{where}; the rest of this buffer was skipped")
            return len(data)
        self.stats.warnings.append(f"{where}; {pos - bad:#x} bytes skipped to the next "
                                   f"readable record")
        return pos

    def _plausible(self, data, pos: int) -> bool:
        size, kind, flags = struct.unpack_from("<HBB", data, pos)
        if flags != 0xC0 or kind not in (0x12, 0x13) or size < 0x50 or pos + size > len(data):
            return False
        stamp = struct.unpack_from("<q", data, pos + 0x10)[0]
        lf = self.etl.logfile_header
        filetime = self.etl.get_filetime_for_event(stamp)
        return lf.start_time <= filetime <= max(lf.end_time, lf.start_time) + _DAY

    def _raw(self, header, record: bytes) -> RawRecord | None:
        h = header.header
        guid = uuid.UUID(bytes_le=bytes(h.ProviderId))  # a GUID: Data1..Data3 little-endian
        prov = provider(guid)
        if self.relevant_only and not _MENTION.search(record) and not (
                prov and _wanted(prov.name, h.Id)):
            return None  # decoding it could not make it matter
        filetime = self.etl.get_filetime_for_event(header.time_delta)
        rec = RawRecord(
            provider=(prov.name if prov and prov.name else f"{{{guid}}}"),
            event_id=h.Id,
            record_id=self.number,
            time=_EPOCH + dt.timedelta(microseconds=filetime // 10),
            channel=WELL_KNOWN_CHANNELS.get(h.Channel, "ETW"),
            computer="",
        )
        items, user_data = _split(header, record)
        fields = prov.templates.get((h.Id, h.Version)) if prov else None
        if fields:
            rec.data = decode(fields, user_data, self.pointer_size)
        elif EXT_SCHEMA_TL in items:  # TraceLogging: the schema came with the event
            schema = parse_schema(items[EXT_SCHEMA_TL])
            if schema is not None:
                rec.provider = provider_name(items.get(EXT_PROV_TRAITS, b"")) or rec.provider
                rec.data = decode_event(schema, user_data)
                # no message template: the event's name and its fields, as trace viewers show it
                rec.message = " ".join([schema.event_name,
                                        *(f"{k}={v}" for k, v in rec.data.items())])
        return rec


def _wanted(name: str, event_id: int) -> bool:
    ids = SOME_EVENTS.get(name)
    return name in ALL_EVENTS or (ids is not None and event_id in ids)


def _split(header, record: bytes) -> tuple[dict[int, bytes], bytes]:
    """The extended data items (type -> data) and the user data after them. Each item
    (Size, ExtType, Linkage, DataSize, data; 8-aligned) says by its linkage bit whether another
    follows: dissect.etl instead keeps taking items while they parse, which can eat the start
    of the user data."""
    pos = header.minimal_size
    items: dict[int, bytes] = {}
    if header.header.Flags & 0x0001:  # EVENT_HEADER_FLAG_EXTENDED_INFO
        while pos + 8 <= len(record):
            size, kind, linkage, data_size = struct.unpack_from("<HHHH", record, pos)
            if size < 8:
                break
            items[kind] = record[pos + 8:pos + 8 + min(data_size, size - 8)]
            pos += size
            if not linkage & 1:
                break
    return items, record[pos:]
