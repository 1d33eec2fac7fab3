"""Writes a trace file: the logfile header event, then events packed into equal-size buffers.

The session clock is the query performance counter (ReservedFlags 1) at 10 MHz, as on current
Windows: an event's TimeStamp is the counter value, and a reader turns it into a FILETIME from
the logfile header's StartTime and the header event's own counter value.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

from .event import EtwEvent
from .payload import filetime
from . import lznt1
from .structs import (BUFFER_FLAG_COMPRESSED, BUFFER_FLAG_FLUSH_MARKER,
                      BUFFER_FLAG_PROC_INDEX, BUFFER_HEADER,
                      BUFFER_STATE_FLUSH, BUFFER_TYPE_GENERIC, BUFFER_TYPE_HEADER, CLOCK_QPC,
                      FILLER, HOOK_LOGFILE_HEADER, LOG_FILE_MODE_COMPRESSED,
                      LOG_FILE_MODE_SEQUENTIAL, LOGFILE_HEADER,
                      MARKER_FLAGS, SYSTEM_TRACE_HEADER, SYSTEMTIME, TIME_ZONE_INFORMATION,
                      TYPE_SYSTEM64, aligned)


@dataclass(frozen=True)
class TimeZone:
    bias: int  # minutes, UTC = local + bias
    standard_name: str
    daylight_name: str
    standard_date: tuple[int, ...]  # SYSTEMTIME rule: (0, month, weekday, week, hour, 0, 0, 0)
    daylight_date: tuple[int, ...]
    daylight_bias: int = -60

    def pack(self) -> bytes:
        return TIME_ZONE_INFORMATION.pack(
            self.bias, self.standard_name.encode("utf-16-le"), SYSTEMTIME.pack(*self.standard_date),
            0, self.daylight_name.encode("utf-16-le"), SYSTEMTIME.pack(*self.daylight_date),
            self.daylight_bias)


# As Windows 10+ stores it: the names are MUI references into tzres.dll.
WEST_EUROPE = TimeZone(-60, "@tzres.dll,-322", "@tzres.dll,-321",
                       (0, 10, 0, 5, 3, 0, 0, 0), (0, 3, 0, 5, 2, 0, 0, 0))


@dataclass(frozen=True)
class Session:
    """What the logfile header says about the tracing session."""

    logger_name: str
    log_file_name: str  # as the session saw it, e.g. C:\\Windows\\System32\\LogFiles\\WMI\\x.etl
    boot_time: _dt.datetime
    start_time: _dt.datetime
    end_time: _dt.datetime
    buffer_size: int = 4096
    perf_freq: int = 10_000_000
    processors: int = 4
    cpu_mhz: int = 2995
    build: int = 26100  # ProviderVersion: the OS build
    logger_id: int = 0x25
    first_sequence: int = 1
    time_zone: TimeZone = WEST_EUROPE
    max_file_mb: int = 100
    compression: int = 0  # COMPRESSION_FORMAT_LZNT1 (2) for a compressed trace, else 0
    logger_thread: int = 0xB4  # the thread that wrote the logfile header

    def qpc(self, when: _dt.datetime) -> int:
        """The performance counter at `when`: it counts from boot."""
        return (filetime(when) - filetime(self.boot_time)) * self.perf_freq // 10_000_000


@dataclass
class _Buffer:
    records: list[bytes] = field(default_factory=list)
    used: int = BUFFER_HEADER.size
    first_time: _dt.datetime | None = None
    last_time: _dt.datetime | None = None


class EtlWriter:
    """Collects events (in time order) and writes the trace file in one go."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events: list[EtwEvent] = []
        self._buffers: list[_Buffer] | None = None  # layout() until the next add()

    def add(self, event: EtwEvent) -> None:
        if self.events and event.time < self.events[-1].time:
            raise ValueError("events must be added in time order")
        self.events.append(event)
        self._buffers = None

    def _header_record(self, buffers_written: int) -> bytes:
        s = self.session
        names = (s.logger_name.encode("utf-16-le") + b"\0\0"
                 + s.log_file_name.encode("utf-16-le") + b"\0\0")
        version = bytes((10, 0, 1, 5))  # Major, Minor, SubVersion, SubMinorVersion
        body = LOGFILE_HEADER.pack(
            s.buffer_size, version, s.build, s.processors, filetime(s.end_time), 156_250,
            s.max_file_mb, LOG_FILE_MODE_SEQUENTIAL | (LOG_FILE_MODE_COMPRESSED if s.compression
                                                       else 0),
            buffers_written, 1, 8, 0, s.cpu_mhz, 0, 0,
            s.time_zone.pack() + b"\0" * 4, filetime(s.boot_time), s.perf_freq,
            filetime(s.start_time), CLOCK_QPC, 0) + names
        size = SYSTEM_TRACE_HEADER.size + len(body)
        head = SYSTEM_TRACE_HEADER.pack(2, TYPE_SYSTEM64, MARKER_FLAGS, size, HOOK_LOGFILE_HEADER,
                                        s.logger_thread, 4, s.qpc(s.start_time), 1, 0)
        return head + body

    def layout(self) -> list[_Buffer]:
        """Records into buffers: the first (header) buffer holds the logfile header alone, as
        a session writes it when it creates the file; a record that does not fit in the
        current buffer starts the next one. Worked out once: to_bytes() and placements()
        use it too."""
        if self._buffers is not None:
            return self._buffers
        s = self.session
        first = _Buffer()
        header = self._header_record(0)  # same size whatever the count
        first.records.append(header)
        first.used += aligned(len(header))
        first.first_time = first.last_time = s.start_time
        buffers = [first, _Buffer()]
        for ev in self.events:
            rec = ev.record(s.qpc(ev.time))
            need = aligned(len(rec))
            buf = buffers[-1]
            if buf.used + need > s.buffer_size:
                buf = _Buffer()
                buffers.append(buf)
            buf.records.append(rec)
            buf.used += need
            buf.first_time = buf.first_time or ev.time
            buf.last_time = ev.time
        first.records[0] = self._header_record(len(buffers))
        self._buffers = buffers
        return buffers

    def placements(self) -> list[tuple[int, int, int]]:
        """(buffer index, file offset, record size) of every event, in the order added."""
        out = []
        for index, buf in enumerate(self.layout()):
            at = index * self.session.buffer_size + BUFFER_HEADER.size
            for rec in buf.records:
                if index:  # buffer 0 holds the logfile header only
                    out.append((index, at, len(rec)))
                at += aligned(len(rec))
        return out

    def to_bytes(self) -> bytes:
        """The file. With compression, every buffer after the header one is stored as its
        header and its used bytes compressed: BufferSize (and Offset) the stored size,
        SavedOffset the size once decompressed; the header buffer's State names the format."""
        s = self.session
        buffers = self.layout()
        out = bytearray()
        for index, buf in enumerate(buffers):
            body = b"".join(r + b"\0" * (aligned(len(r)) - len(r)) for r in buf.records)
            last = index == len(buffers) - 1
            ref = buf.first_time or s.start_time
            size, stored, flags = s.buffer_size, buf.used, BUFFER_FLAG_FLUSH_MARKER if last else 0
            state = s.compression if index == 0 and s.compression else BUFFER_STATE_FLUSH
            if s.compression and index:
                body = lznt1.compress(body)
                size = stored = BUFFER_HEADER.size + len(body)
                flags |= BUFFER_FLAG_COMPRESSED
            if index == 0:  # as in real files: no time, sequence or clock in the header buffer
                head = BUFFER_HEADER.pack(
                    size, buf.used, buf.used, 0, 0, 0, 0, 0, s.logger_id, state, stored,
                    flags | BUFFER_FLAG_PROC_INDEX, BUFFER_TYPE_HEADER, 0, 0)
            else:
                head = BUFFER_HEADER.pack(
                    size, buf.used, buf.used, 0, s.qpc(buf.last_time or s.start_time),
                    s.first_sequence + index, CLOCK_QPC | (s.perf_freq << 3), 0, s.logger_id,
                    state, stored, flags, BUFFER_TYPE_GENERIC, filetime(ref), s.qpc(ref))
            out += head + body + bytes([FILLER]) * (size - BUFFER_HEADER.size - len(body))
        return bytes(out)

    def write(self, path: str | Path) -> int:
        data = self.to_bytes()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
        return len(data)
