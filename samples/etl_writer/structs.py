"""The on-disk structures of an ETW trace file (.etl), each declared once.

A file is a sequence of equal-size buffers flushed as they were in memory: a WMI_BUFFER_HEADER,
then variable-size records, each starting with a trace header and aligned to 8 bytes; the rest
of the buffer is filler. The first record of the first buffer is the logfile header event
(SYSTEM_TRACE_HEADER, hook 0x0000) whose payload is a TRACE_LOGFILE_HEADER followed by the
logger name and the log file name. Layouts from the published descriptions (Geoff Chappell's
ETW studies, the Windows SDK's evntrace.h / evntcons.h, the phnt ntwmi.h header), 64-bit form;
header-buffer values checked against the real BootPerfDiagLogger.etl header buffer quoted in
dissect.etl's tests.
"""
from __future__ import annotations

import struct

# WMI_BUFFER_HEADER, 0x48 bytes: BufferSize, SavedOffset, CurrentOffset, ReferenceCount,
# TimeStamp, SequenceNumber, ClockType:3|Frequency:61, ClientContext (ProcessorIndex,
# LoggerId), State, Offset (bytes in use, header included), BufferFlag, BufferType,
# ReferenceTime (ETW_REF_CLOCK: StartTime FILETIME, StartPerfClock).
BUFFER_HEADER = struct.Struct("<IIIiqqQHHIIHHqq")

# SYSTEM_TRACE_HEADER (64-bit), 0x20 bytes: Version, HeaderType, MarkerFlags, Size,
# HookId (Type | Group << 8), ThreadId, ProcessId, SystemTime, KernelTime, UserTime.
SYSTEM_TRACE_HEADER = struct.Struct("<HBBHHIIqII")

# TRACE_LOGFILE_HEADER (64-bit), 0x118 bytes: BufferSize, Version (4 bytes), ProviderVersion,
# NumberOfProcessors, EndTime, TimerResolution, MaximumFileSize, LogFileMode, BuffersWritten,
# StartBuffers, PointerSize, EventsLost, CpuSpeedInMHz, LoggerName, LogFileName (pointers, not
# used in files), TIME_ZONE_INFORMATION (0xAC) + 4 alignment bytes, BootTime, PerfFreq,
# StartTime, ReservedFlags (clock type), BuffersLost.
LOGFILE_HEADER = struct.Struct("<I4sIIqIIIIIIIIQQ176sqqqII")
TIME_ZONE_INFORMATION = struct.Struct("<l64s16sl64s16sl")  # 0xAC
SYSTEMTIME = struct.Struct("<8H")

# EVENT_HEADER as packed in a trace buffer, 0x50 bytes: Size, HeaderType, MarkerFlags, Flags,
# EventProperty, ThreadId, ProcessId, TimeStamp, ProviderId (GUID, little-endian fields),
# EVENT_DESCRIPTOR (Id, Version, Channel, Level, Opcode, Task, Keyword), KernelTime, UserTime,
# ActivityId.
EVENT_HEADER = struct.Struct("<HBBHHIIq16sHBBBBHQII16s")

# An extended data item as packed after the EVENT_HEADER (8-aligned, data inline): Size,
# ExtType, Linkage (bit 0: another item follows), DataSize.
EXT_ITEM_HEADER = struct.Struct("<HHHH")
FLAG_EXTENDED_INFO = 0x0001  # EVENT_HEADER_FLAG_EXTENDED_INFO

MARKER_FLAGS = 0xC0  # TRACE_HEADER_FLAG | TRACE_HEADER_EVENT_TRACE
TYPE_SYSTEM64 = 0x02  # TRACE_HEADER_TYPE_SYSTEM64
TYPE_EVENT_HEADER64 = 0x13  # TRACE_HEADER_TYPE_EVENT_HEADER64
HOOK_LOGFILE_HEADER = 0x0000  # EVENT_TRACE_GROUP_HEADER | EVENT_TRACE_TYPE_INFO

BUFFER_TYPE_GENERIC, BUFFER_TYPE_HEADER = 0, 4  # ETW_BUFFER_TYPE
BUFFER_STATE_FLUSH = 3  # ETW_BUFFER_STATE: EtwBufferFlush
BUFFER_FLAG_FLUSH_MARKER = 0x0001
BUFFER_FLAG_PROC_INDEX = 0x0020
BUFFER_FLAG_COMPRESSED = 0x0040
CLOCK_QPC = 1  # ReservedFlags / ClockType: query performance counter
LOG_FILE_MODE_SEQUENTIAL = 0x00000001
LOG_FILE_MODE_COMPRESSED = 0x04000000  # EVENT_TRACE_COMPRESSED_MODE
COMPRESSION_FORMAT_LZNT1 = 2
FILLER = 0xFF  # unused buffer space

ALIGN = 8

assert BUFFER_HEADER.size == 0x48
assert SYSTEM_TRACE_HEADER.size == 0x20
assert LOGFILE_HEADER.size == 0x118
assert TIME_ZONE_INFORMATION.size == 0xAC
assert EVENT_HEADER.size == 0x50


def aligned(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)
