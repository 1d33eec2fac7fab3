"""Event payloads (UserData) laid out as a manifest template says: fields back to back, no
alignment, each in its manifest inType's binary form (what TDH decodes)."""
from __future__ import annotations

import datetime as _dt
import struct
import uuid
from dataclasses import dataclass
from typing import Any, Callable

_EPOCH = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)


def filetime(when: _dt.datetime) -> int:
    """100 ns intervals since 1601-01-01 UTC (exact: integer arithmetic on the timedelta)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _unicode(value: str) -> bytes:
    return value.encode("utf-16-le") + b"\x00\x00"


def _guid(value: uuid.UUID) -> bytes:
    return value.bytes_le  # a GUID in memory: Data1..Data3 little-endian


def _filetime(value: _dt.datetime) -> bytes:
    return struct.pack("<Q", filetime(value))


# inType (without the "win:" prefix) -> encoder
ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "UnicodeString": _unicode,
    "AnsiString": lambda v: v.encode("latin-1") + b"\x00",
    "GUID": _guid,
    "UInt8": lambda v: struct.pack("<B", v),
    "UInt16": lambda v: struct.pack("<H", v),
    "UInt32": lambda v: struct.pack("<I", v),
    "UInt64": lambda v: struct.pack("<Q", v),
    "HexInt32": lambda v: struct.pack("<I", v),
    "HexInt64": lambda v: struct.pack("<Q", v),
    "Boolean": lambda v: struct.pack("<I", 1 if v else 0),  # a 4-byte BOOL
    "Pointer": lambda v: struct.pack("<Q", v),  # 64-bit provider
    "FILETIME": _filetime,
}


@dataclass(frozen=True)
class Field:
    """One template field: its manifest name, inType and the value to write."""

    name: str
    in_type: str
    value: Any

    def encode(self) -> bytes:
        return ENCODERS[self.in_type](self.value)


def encode_fields(fields: tuple[Field, ...]) -> bytes:
    return b"".join(f.encode() for f in fields)
