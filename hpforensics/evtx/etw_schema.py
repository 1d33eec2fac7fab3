"""Named fields of manifest-based ETW events, from the provider manifests dissect.etl bundles.

dissect.etl ships ~840 provider manifests (dissect/etl/manifests/xml/{GUID}.xml) but, as of
3.14, cannot use them for the events that matter here: its manifest compiler has no mapping for
win:HexInt32 or win:FILETIME (so the Windows Update Client, Kernel-General and Kernel-Process
manifests fail to compile), it looks events up by (opcode, version) instead of (event id,
version), and it reads an EVENT_HEADER's ProviderId as a big-endian UUID. So the manifests are
read here as data, and the UserData is decoded the way TDH does: the template's fields back to
back, no alignment. Values are rendered as Windows renders them in event XML, so an event read
from a trace matches the same event read from an .evtx log. TraceLogging events reuse decode()
with the field list their own schema gives (etw_tracelogging.py), hence the Counted* types.
"""
from __future__ import annotations

import ipaddress
import logging
import struct
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from hpforensics.evtx.records import filetime_datetime

log = logging.getLogger(__name__)

_NS = "{http://schemas.microsoft.com/win/2004/08/events}"
# Channel ids every manifest shares (winmeta.xml): the admin logs an .evtx would hold.
WELL_KNOWN_CHANNELS = {8: "System", 9: "Application", 10: "Security"}

# fixed-size inTypes: struct format
_FIXED = {
    "Int8": "<b", "UInt8": "<B", "Int16": "<h", "UInt16": "<H", "Int32": "<i", "UInt32": "<I",
    "Int64": "<q", "UInt64": "<Q", "HexInt32": "<I", "HexInt64": "<Q", "Float": "<f",
    "Double": "<d", "Boolean": "<I", "FILETIME": "<Q", "IPAddrV4": "<I",
}
_HEX_OUT = ("HexInt32", "HexInt64")
_COUNTED = {"CountedString": 2, "CountedAnsiString": 1, "CountedBinary": 0}
# Names some bundled manifests (converted from MOF) use for the same types.
_ALIASES = {"SInt8": "Int8", "SInt16": "Int16", "SInt32": "Int32", "SInt64": "Int64",
            "WString": "UnicodeString", "String": "AnsiString", "WChar": "UInt16"}


def _manifest_dir():
    return resources.files("dissect.etl") / "manifests" / "xml"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    in_type: str  # without the "win:" prefix; "" for a <struct>
    out_type: str
    length: str  # a number or the name of an earlier field, "" when absent
    count: str


@dataclass(frozen=True)
class Provider:
    name: str
    templates: dict[tuple[int, int], tuple[FieldSpec, ...]]  # (event id, version) -> fields


def _strip(t: str | None) -> str:
    return (t or "").rpartition(":")[2]


@lru_cache(maxsize=256)
def provider(guid: uuid.UUID) -> Provider | None:
    """The provider's manifest as bundled with dissect.etl, or None when it ships none."""
    try:
        text = (_manifest_dir() / f"{{{guid}}}.xml").read_text()
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return None
    try:
        root = ET.fromstring(text)  # package data, not evidence
    except ET.ParseError as exc:
        log.warning("dissect.etl manifest for %s is not well formed: %s", guid, exc)
        return None
    prov = root.find(f".//{_NS}provider")
    templates = {}
    for tpl in root.iter(f"{_NS}template"):
        fields = []
        for node in tpl:
            a = node.attrib
            is_data = node.tag == f"{_NS}data"
            in_type = _strip(a.get("inType")) if is_data else ""
            fields.append(FieldSpec(a.get("name", ""), _ALIASES.get(in_type, in_type),
                                    _strip(a.get("outType")), a.get("length", ""),
                                    a.get("count", "")))
        templates[tpl.attrib.get("tid", "")] = tuple(fields)
    events = {}
    for ev in root.iter(f"{_NS}event"):
        a = ev.attrib
        if a.get("template") in templates:
            key = (int(a.get("value", "0"), 0), int(a.get("version", "0"), 0))
            events[key] = templates[a["template"]]
    return Provider(prov.attrib.get("name", "") if prov is not None else "", events)


def decode(fields: tuple[FieldSpec, ...], data: bytes, pointer_size: int = 8) -> dict[str, str]:
    """Field name -> rendered text. Decoding stops (keeping what came before) at a field it
    cannot size: a <struct>, an unknown inType, or data that ends early."""
    out: dict[str, str] = {}
    raw: dict[str, int] = {}
    pos = 0
    for spec in fields:
        count = _number(spec.count, raw) if spec.count else 1
        if count is None or not spec.in_type or count > len(data) - pos + 1:
            break  # a count the data cannot hold is damage, not an array
        values = []
        for _ in range(count):
            got = _one(spec, data, pos, raw, pointer_size)
            if got is None or (got[1] == pos and count > 1):
                return out
            value, pos = got
            values.append(value)
        if count == 1 and isinstance(values[0], int):
            raw[spec.name] = values[0]
        out[spec.name] = ", ".join(_render(spec, v) for v in values)
    return out


def _number(ref: str, raw: dict[str, int]) -> int | None:
    if ref.isdigit():
        return int(ref)
    return raw.get(ref)


def _one(spec: FieldSpec, data: bytes, pos: int, raw: dict[str, int],
         pointer_size: int) -> tuple[object, int] | None:
    t = spec.in_type
    fmt = _FIXED.get(t) or ({4: "<I", 8: "<Q"}[pointer_size] if t in ("Pointer", "SizeT") else None)
    if fmt:
        end = pos + struct.calcsize(fmt)
        if end > len(data):
            return None
        return struct.unpack_from(fmt, data, pos)[0], end
    if t in ("UnicodeString", "AnsiString"):
        width = 2 if t == "UnicodeString" else 1
        if spec.length:
            n = _number(spec.length, raw)
            if n is None or pos + n * width > len(data):
                return None
            end = pos + n * width
            return _text(data[pos:end], width), end
        term = b"\0\0" if width == 2 else b"\0"
        end = pos
        while end + width <= len(data) and data[end:end + width] != term:
            end += width
        if end + width > len(data):  # no terminator: the string runs to the end of the data
            return _text(data[pos:], width), len(data)
        return _text(data[pos:end], width), end + width
    if t in ("GUID", "SYSTEMTIME", "IPAddrV6"):
        end = pos + 16
        return (data[pos:end], end) if end <= len(data) else None
    if t == "SID":
        if pos + 8 > len(data):
            return None
        end = pos + 8 + 4 * data[pos + 1]
        return (data[pos:end], end) if end <= len(data) else None
    if t == "Binary" and spec.length:
        n = _number(spec.length, raw)
        if n is None or pos + n > len(data):
            return None
        return data[pos:pos + n], pos + n
    if t in _COUNTED:  # TraceLogging: a 16-bit byte count, then the bytes
        if pos + 2 > len(data):
            return None
        end = pos + 2 + int.from_bytes(data[pos:pos + 2], "little")
        if end > len(data):
            return None
        body = data[pos + 2:end]
        return (body if t == "CountedBinary" else _text(body, _COUNTED[t])), end
    return None


def _text(b: bytes, width: int) -> str:
    return b.decode("utf-16-le" if width == 2 else "latin-1", errors="replace").rstrip("\0")


def _render(spec: FieldSpec, value: Any) -> str:
    """`value` is what the field's InType decoded to (int, bytes or str): tested by `t`."""
    t = spec.in_type
    if t == "GUID":
        return "{" + str(uuid.UUID(bytes_le=bytes(value))).upper() + "}"
    if t == "FILETIME":
        try:
            stamp = filetime_datetime(int(value))
        except OverflowError:  # past year 9999: not a time, show the number
            return f"0x{value:x}"
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}{int(value) % 10}Z"
    if t == "SYSTEMTIME":
        y, mo, _, d, h, mi, s, ms = struct.unpack("<8H", value)
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{ms:03d}0000Z"
    if t == "SID":
        b = bytes(value)
        subs = struct.unpack_from(f"<{b[1]}I", b, 8)
        return "S-" + "-".join(str(x) for x in (b[0], int.from_bytes(b[2:8], "big"), *subs))
    if t in ("Binary", "CountedBinary"):
        return bytes(value).hex().upper()
    if t == "Boolean":
        return "true" if value else "false"
    if t in _HEX_OUT or spec.out_type in _HEX_OUT or t in ("Pointer", "SizeT"):
        return f"0x{value:x}"
    if t == "IPAddrV6":
        return str(ipaddress.IPv6Address(bytes(value)))
    if t == "IPAddrV4":
        return ".".join(str(x) for x in struct.pack("<I", value))
    return str(value)
