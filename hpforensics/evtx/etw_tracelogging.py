"""Self-describing (TraceLogging) ETW events: the schema travels with each event.

An EVENT_HEADER record of a TraceLogging provider carries two extended data items: the provider
traits (EVENT_HEADER_EXT_TYPE_PROV_TRAITS: UINT16 size, the provider name in UTF-8, then the
traits) and the event schema (EVENT_HEADER_EXT_TYPE_EVENT_SCHEMA_TL: UINT16 size, tag bytes
chained by bit 0x80, the event name in UTF-8, then per field: name, UINT8 InType (low 5 bits
the type; 0x20 constant count, 0x40 variable count, 0x80 an OutType byte follows), the OutType
(bit 0x80: chained tag bytes follow), a UINT16 count for constant-count arrays). The schema is
turned into the same field list a manifest gives, and decoded by etw_schema.
"""
from __future__ import annotations

from dataclasses import dataclass

from hpforensics.evtx.etw_schema import FieldSpec, decode

EXT_SCHEMA_TL, EXT_PROV_TRAITS = 11, 12

# TlgIn type codes -> the manifest inType with the same layout
_TYPES = {
    1: "UnicodeString", 2: "AnsiString", 3: "Int8", 4: "UInt8", 5: "Int16", 6: "UInt16",
    7: "Int32", 8: "UInt32", 9: "Int64", 10: "UInt64", 11: "Float", 12: "Double",
    13: "Boolean", 14: "CountedBinary", 15: "GUID", 17: "FILETIME", 18: "SYSTEMTIME",
    19: "SID", 20: "HexInt32", 21: "HexInt64", 22: "CountedString", 23: "CountedAnsiString",
    25: "CountedBinary",
}
_HEX_OUT = frozenset({4, 14, 15})  # TlgOutHEX, TlgOutNTSTATUS, TlgOutHRESULT
_INTEGERS = frozenset({"Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64"})
_CCOUNT, _VCOUNT, _CHAIN = 0x20, 0x40, 0x80
_HIDDEN = "\0"  # prefix of the count fields the schema implies (not event data)


@dataclass(frozen=True)
class TlSchema:
    event_name: str
    fields: tuple[FieldSpec, ...]


def provider_name(traits: bytes) -> str:
    """The provider name from a PROV_TRAITS item ('' when it has none)."""
    end = traits.find(b"\0", 2)
    return traits[2:end].decode("utf-8", errors="replace") if end > 2 else ""


def parse_schema(meta: bytes) -> TlSchema | None:
    """The event name and fields of an EVENT_SCHEMA_TL item; None when it is not one."""
    if len(meta) < 4:
        return None
    size = min(int.from_bytes(meta[:2], "little"), len(meta))
    pos = 2
    while pos < size and meta[pos] & _CHAIN:  # event tags
        pos += 1
    pos += 1
    name, pos = _cstring(meta, pos, size)
    if name is None:
        return None
    fields: list[FieldSpec] = []
    while pos < size:
        fname, pos = _cstring(meta, pos, size)
        if fname is None or pos >= size:
            break
        in_type = meta[pos]
        pos += 1
        out_type = 0
        if in_type & _CHAIN:
            out_type = meta[pos] if pos < size else 0
            pos += 1
            if out_type & _CHAIN:  # field tags
                while pos < size and meta[pos] & _CHAIN:
                    pos += 1
                pos += 1
        kind = _TYPES.get(in_type & 0x1F, "")
        out = "HexInt32" if kind in _INTEGERS and out_type & 0x7F in _HEX_OUT else ""
        count = ""
        if in_type & 0x60 == _CCOUNT:
            count = str(int.from_bytes(meta[pos:pos + 2], "little"))
            pos += 2
        elif in_type & 0x60 == _VCOUNT:
            count = f"{_HIDDEN}{fname}"
            fields.append(FieldSpec(count, "UInt16", "", "", ""))
        elif in_type & 0x60:  # a custom-serialised field: its layout is not ours to know
            kind = ""
        fields.append(FieldSpec(fname, kind, out, "", count))
    return TlSchema(name, tuple(fields))


def decode_event(schema: TlSchema, user_data: bytes) -> dict[str, str]:
    values = decode(schema.fields, user_data)
    return {k: v for k, v in values.items() if not k.startswith(_HIDDEN)}


def _cstring(b: bytes, pos: int, end: int) -> tuple[str | None, int]:
    stop = b.find(b"\0", pos, end)
    if stop < 0:
        return None, end
    return b[pos:stop].decode("utf-8", errors="replace"), stop + 1
