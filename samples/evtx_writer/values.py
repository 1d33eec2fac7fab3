"""Typed substitution values of binary XML: how each type is encoded and how parsers render it.

A template instance carries its values as (size, type) descriptors followed by the raw bytes;
the type codes are the ones from the published EVTX format description (libyal's "Windows XML
Event Log (EVTX) format", section "Value types").
"""
from __future__ import annotations

import datetime as _dt
import functools
import struct
import uuid
from enum import IntEnum
from typing import Any, NamedTuple

FILETIME_EPOCH = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)


class VT(IntEnum):
    """Binary XML value types."""

    NULL = 0x00
    STRING = 0x01
    ANSI = 0x02
    INT8 = 0x03
    UINT8 = 0x04
    INT16 = 0x05
    UINT16 = 0x06
    INT32 = 0x07
    UINT32 = 0x08
    INT64 = 0x09
    UINT64 = 0x0A
    REAL32 = 0x0B
    REAL64 = 0x0C
    BOOL = 0x0D
    BINARY = 0x0E
    GUID = 0x0F
    SIZET = 0x10
    FILETIME = 0x11
    SYSTEMTIME = 0x12
    SID = 0x13
    HEX32 = 0x14
    HEX64 = 0x15


_INT_FORMATS = {
    VT.INT8: "<b", VT.UINT8: "<B", VT.INT16: "<h", VT.UINT16: "<H", VT.INT32: "<i",
    VT.UINT32: "<I", VT.INT64: "<q", VT.UINT64: "<Q", VT.HEX32: "<I", VT.HEX64: "<Q",
    VT.SIZET: "<Q", VT.BOOL: "<I",
}


class Value(NamedTuple):
    """A value with an explicit binary XML type (use the helpers below to build one).

    A NamedTuple rather than a dataclass: writers create millions of these.
    """

    vtype: VT
    value: Any

    def encode(self) -> bytes:
        return _ENCODERS[self.vtype](self.value)

    def text(self) -> str:
        return render(self.vtype, self.value)


def string(v: str) -> Value: return Value(VT.STRING, v)
def u8(v: int) -> Value: return Value(VT.UINT8, v)
def u16(v: int) -> Value: return Value(VT.UINT16, v)
def u32(v: int) -> Value: return Value(VT.UINT32, v)
def u64(v: int) -> Value: return Value(VT.UINT64, v)
def i32(v: int) -> Value: return Value(VT.INT32, v)
def i64(v: int) -> Value: return Value(VT.INT64, v)
def hex32(v: int) -> Value: return Value(VT.HEX32, v)
def hex64(v: int) -> Value: return Value(VT.HEX64, v)
def boolean(v: bool) -> Value: return Value(VT.BOOL, bool(v))
def binary(v: bytes) -> Value: return Value(VT.BINARY, bytes(v))
def filetime(v: _dt.datetime) -> Value: return Value(VT.FILETIME, v)
def systemtime(v: _dt.datetime) -> Value: return Value(VT.SYSTEMTIME, v)
def sid(v: str) -> Value: return Value(VT.SID, v)
def null() -> Value: return Value(VT.NULL, None)


def guid(v: uuid.UUID | str) -> Value:
    return Value(VT.GUID, v if isinstance(v, uuid.UUID) else uuid.UUID(v))


def coerce(v: Any) -> Value:
    """Pick the binary XML type a plain Python value gets (Value passes through)."""
    if isinstance(v, Value):
        return v
    if v is None:
        return null()
    if isinstance(v, bool):
        return boolean(v)
    if isinstance(v, int):
        if 0 <= v < 1 << 32:
            return u32(v)
        return u64(v) if v >= 0 else i64(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, uuid.UUID):
        return guid(v)
    if isinstance(v, _dt.datetime):
        return filetime(v)
    if isinstance(v, (bytes, bytearray)):
        return binary(v)
    raise TypeError(f"no binary XML type for {type(v).__name__}")


def to_filetime(t: _dt.datetime) -> int:
    """100 ns intervals since 1601-01-01 UTC (naive datetimes are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    delta = t - FILETIME_EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


@functools.lru_cache(maxsize=1024)
def _sid_bytes(text: str) -> bytes:
    parts = text.split("-")
    if len(parts) < 3 or parts[0].upper() != "S":
        raise ValueError(f"not a SID: {text!r}")
    rev, auth, subs = int(parts[1]), int(parts[2]), [int(p) for p in parts[3:]]
    return struct.pack("<BB", rev, len(subs)) + auth.to_bytes(6, "big") + struct.pack(
        f"<{len(subs)}I", *subs
    )


def _systemtime_bytes(v: _dt.datetime) -> bytes:
    t = v.astimezone(_dt.timezone.utc) if v.tzinfo else v
    return struct.pack("<8H", t.year, t.month, (t.weekday() + 1) % 7, t.day, t.hour, t.minute,
                       t.second, t.microsecond // 1000)


def _int_encoder(fmt: str):
    pack = struct.Struct(fmt).pack
    return lambda v: pack(int(v))


_ENCODERS = {vt: _int_encoder(fmt) for vt, fmt in _INT_FORMATS.items()}
_ENCODERS.update({
    VT.STRING: lambda v: v.encode("utf-16-le"),
    VT.NULL: lambda v: b"",
    VT.GUID: lambda v: v.bytes_le,
    VT.FILETIME: lambda v: struct.pack("<Q", to_filetime(v)),
    VT.SYSTEMTIME: _systemtime_bytes,
    VT.SID: lambda v: _sid_bytes(v),
    VT.BINARY: bytes,
    VT.ANSI: lambda v: v.encode("latin-1"),
    VT.REAL32: lambda v: struct.pack("<f", v),
    VT.REAL64: lambda v: struct.pack("<d", v),
})


def encode(vtype: VT, v: Any) -> bytes:
    """Bytes of a value of binary XML type `vtype`."""
    try:
        return _ENCODERS[vtype](v)
    except KeyError:
        raise ValueError(f"cannot encode value type {vtype!r}") from None


def _iso(t: _dt.datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render(vtype: VT, v: Any) -> str:
    """Text the way the evtx crate renders the value (the canonical form in our tests)."""
    if vtype in (VT.STRING, VT.ANSI):
        return v
    if vtype == VT.NULL:
        return ""
    if vtype in (VT.HEX32, VT.HEX64):
        return f"0x{int(v):x}"
    if vtype == VT.BOOL:
        return "true" if v else "false"
    if vtype == VT.GUID:
        return str(v).upper()
    if vtype == VT.FILETIME:
        return _iso(v)
    if vtype == VT.SYSTEMTIME:
        return _iso(v.replace(microsecond=v.microsecond // 1000 * 1000))
    if vtype == VT.BINARY:
        return bytes(v).hex().upper()
    if vtype == VT.SID:
        return v
    return str(v)
