"""ETW trace files (.etl) to RawRecords: dissect.etl reads the records, etw_schema the fields.

The buffers are walked by etl_buffers (headers checked, compression, damage stepped over);
each buffer's records are read with dissect.etl's trace-header classes. A record that cannot
be read costs the bytes up to the next plausible event header in its buffer, with one warning.

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
from hpforensics.evtx.etl_buffers import (HEADER_SIZE, MAX_BUFFER, MIN_BUFFER, Buffer, Layout,
                                          buffers)
from hpforensics.evtx.etw_schema import WELL_KNOWN_CHANNELS, decode, provider
from hpforensics.evtx.etw_tracelogging import (EXT_PROV_TRAITS, EXT_SCHEMA_TL, decode_event,
                                               parse_schema, provider_name)
from hpforensics.evtx.readers import ALL_EVENTS, SOME_EVENTS
from hpforensics.evtx.records import RawRecord, ReadStats, filetime_datetime

log = logging.getLogger(__name__)

_MARKER_END = 0xFFFFFFFF  # filler after the last record of a buffer
_DAY = 864_000_000_000  # FILETIME units
# The Setup log renders the servicing stack's events with other names than the ETW template
# (as bundled with dissect.etl) gives their fields: renamed so both read the same way.
EVTX_NAMES = {"Microsoft-Windows-Servicing": {
    "identifier": "PackageIdentifier", "currentPackageState": "InitialPackageState",
    "currentPackageStateTextized": "InitialPackageStateTextized",
    "targetPackageState": "IntendedPackageState",
    "targetPackageStateTextized": "IntendedPackageStateTextized", "errorCode": "ErrorCode",
    "client": "Client"}}
# "hotpatch" in any case, 8-bit or UTF-16LE, anywhere in the record (schema included)
_MENTION = re.compile(rb"(?i)h\x00?o\x00?t\x00?p\x00?a\x00?t\x00?c\x00?h")


def read_etl(path: str, stats: ReadStats, *, relevant_only: bool = True) -> Iterator[RawRecord]:
    """`relevant_only`: as for .evtx, give only the records that can matter (the providers and
    IDs normalise.py reads, and any record whose bytes mention hotpatch); all are counted."""
    # lazy: dissect only for the inputs that need it
    from dissect.etl.etl import ETL

    with open_evidence(path) as fh:
        file_size = os.fstat(fh.fileno()).st_size
        try:
            etl = ETL(fh)
        except Exception as exc:  # noqa: BLE001 - dissect raises many types on foreign data
            stats.warnings.append(f"{stats.source} at offset 0x0: not readable as an ETW trace "
                                  f"by dissect.etl ({type(exc).__name__}: {exc}); no events "
                                  f"taken from it")
            return
        lf = etl.logfile_header
        layout = Layout(fh, file_size, etl.buffer_size, lf.header.BufferSize,
                        lf.header.LogFileMode, lf.buffers_written)
        if not MIN_BUFFER <= layout.nominal <= MAX_BUFFER or layout.nominal % 8:
            stats.warnings.append(f"{stats.source} at offset 0x0: not readable as an ETW trace: "
                                  f"buffer size {layout.nominal:#x} in its header; no events "
                                  f"taken")
            return
        walk = _Walk(etl, stats, relevant_only)

        def warn(offset: int, text: str) -> None:
            stats.warnings.append(f"{stats.source} at offset {offset:#x}: {text}")

        for buf in buffers(layout, warn):
            yield from walk.records(buf)


class _Walk:
    """Record numbering and decoding across the buffers of one trace."""

    def __init__(self, etl, stats: ReadStats, relevant_only: bool) -> None:
        self.etl = etl
        self.relevant_only = relevant_only
        self.stats = stats
        self.number = 0
        self.pointer_size = etl.pointer_size

    def records(self, buf: Buffer) -> Iterator[RawRecord]:
        # lazy: dissect only for the inputs that need it
        from dissect.etl.headers.event import EventHeader
        from dissect.etl.headers.utils import select_event_header

        if buf.index > 0 and self.number == 0:  # the header buffer was lost: its record is 1
            self.number = self.stats.records = 1
        data = memoryview(buf.data)
        pos = 0
        while pos + 4 <= len(data):
            if int.from_bytes(data[pos:pos + 4], "little") == _MARKER_END:
                return
            try:
                header = select_event_header(data[pos:], self.etl)
                size = header.size
                problem = "" if pos + size <= len(data) else \
                    f"a record of {size:#x} bytes overruns the buffer"
            except Exception as exc:  # noqa: BLE001 - dissect raises many types (even
                # NotImplementedError for a WPP header with a component id) on foreign data
                problem = f"unreadable record ({type(exc).__name__}: {exc})"
            if problem:
                if buf.cut:  # the file ends inside this record: said by the buffer walk
                    return
                pos = self._resync(buf, pos, problem)
                continue
            self.number += 1
            self.stats.records += 1
            if isinstance(header, EventHeader):
                rec = self._raw(header, data[pos:pos + size])
                if rec is not None:
                    yield rec
            pos += (size + 7) & ~7

    def _resync(self, buf: Buffer, bad: int, why: str) -> int:
        """After a damaged record, the next 8-aligned place where an event header with a
        sane size and a time inside the trace starts (records after it are intact); the
        buffer's end when there is none. One warning either way."""
        data = buf.data
        pos = bad + 8
        while pos + 0x50 <= len(data) and not self._plausible(data, pos):
            pos += 8
        if buf.header.compressed:
            where = f"{buf.header.offset:#x}: buffer {buf.index} (at {bad:#x} decompressed)"
        else:
            where = f"{buf.header.offset + HEADER_SIZE + bad:#x}: buffer {buf.index}"
        where = f"{self.stats.source} at offset {where}: {why}"
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

    def _raw(self, header, view: memoryview) -> RawRecord | None:
        h = header.header
        guid = uuid.UUID(bytes_le=bytes(h.ProviderId))  # a GUID: Data1..Data3 little-endian
        prov = provider(guid)
        # the provider/ID test first, the scan of the bytes only for records it does not keep,
        # the copy only for records kept
        if self.relevant_only and not (prov and _wanted(prov.name, h.Id)) \
                and not _MENTION.search(view):
            return None  # decoding it could not make it matter
        record = bytes(view)
        filetime = self.etl.get_filetime_for_event(header.time_delta)
        rec = RawRecord(
            provider=(prov.name if prov and prov.name else f"{{{guid}}}"),
            event_id=int(h.Id),  # a plain int: cstruct ints do not pickle (--jobs)
            record_id=self.number,
            time=_time(filetime),
            channel=WELL_KNOWN_CHANNELS.get(h.Channel, "ETW"),
            computer="",
        )
        items, user_data = _split(header, record)
        fields = prov.templates.get((h.Id, h.Version)) if prov else None
        if fields:
            rec.data = decode(fields, user_data, self.pointer_size)
            names = EVTX_NAMES.get(rec.provider)
            if names:
                rec.data = {names.get(k, k): v for k, v in rec.data.items()}
        elif EXT_SCHEMA_TL in items:  # TraceLogging: the schema came with the event
            schema = parse_schema(items[EXT_SCHEMA_TL])
            if schema is not None:
                rec.provider = provider_name(items.get(EXT_PROV_TRAITS, b"")) or rec.provider
                rec.data = decode_event(schema, user_data)
                # no message template: the event's name and its fields, as trace viewers show it
                rec.message = " ".join([schema.event_name,
                                        *(f"{k}={v}" for k, v in rec.data.items())])
        return rec


def _time(filetime: int) -> dt.datetime | None:
    try:
        return filetime_datetime(filetime)
    except OverflowError:  # a damaged timestamp: no time rather than a wrong one
        return None


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
