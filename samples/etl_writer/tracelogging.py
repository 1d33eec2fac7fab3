"""TraceLogging (self-describing) events: the schema and the provider name travel with each
event as extended data items (EVENT_SCHEMA_TL, PROV_TRAITS), the layout TraceLoggingProvider.h
describes; no manifest is needed to read them."""
from __future__ import annotations

import datetime as _dt
import hashlib
import uuid

from .event import EtwEvent, ExtItem
from .payload import Field

EXT_SCHEMA_TL, EXT_PROV_TRAITS = 11, 12
CHANNEL_TRACELOGGING = 11  # the channel TraceLogging events are written with

# manifest inType -> TlgIn code with the same binary layout
TLG_IN = {"UnicodeString": 1, "AnsiString": 2, "Int8": 3, "UInt8": 4, "Int16": 5, "UInt16": 6,
          "Int32": 7, "UInt32": 8, "Int64": 9, "UInt64": 10, "Boolean": 13, "GUID": 15,
          "FILETIME": 17, "HexInt32": 20, "HexInt64": 21}
# The EventSource / TraceLogging name-hash namespace (a big-endian GUID).
_NAMESPACE = bytes.fromhex("482C2DB2C39047C887F81A15BFC130FB")


def provider_guid(name: str) -> uuid.UUID:
    """The GUID a TraceLogging provider declared by name alone gets: SHA-1 over the namespace
    and the upper-cased name in UTF-16BE, first 16 bytes, version nibble 5, as a GUID."""
    digest = bytearray(hashlib.sha1(_NAMESPACE + name.upper().encode("utf-16-be")).digest()[:16])
    digest[7] = (digest[7] & 0x0F) | 0x50
    return uuid.UUID(bytes_le=bytes(digest))


def traits_item(provider: str) -> ExtItem:
    body = provider.encode("utf-8") + b"\0"
    return ExtItem(EXT_PROV_TRAITS, (2 + len(body)).to_bytes(2, "little") + body)


def schema_item(event_name: str, fields: tuple[Field, ...]) -> ExtItem:
    body = b"\0" + event_name.encode("utf-8") + b"\0"  # no event tags
    for f in fields:
        body += f.name.encode("utf-8") + b"\0" + bytes((TLG_IN[f.in_type],))
    return ExtItem(EXT_SCHEMA_TL, (2 + len(body)).to_bytes(2, "little") + body)


def tl_event(provider: str, event_name: str, when: _dt.datetime, fields: tuple[Field, ...], *,
             level: int = 4, keywords: int = 0, pid: int = 0, tid: int = 0) -> EtwEvent:
    return EtwEvent(provider_guid(provider), provider, 0, 0, when, fields,
                    channel=CHANNEL_TRACELOGGING, level=level, keywords=keywords,
                    process_id=pid, thread_id=tid, event_name=event_name,
                    extended=(traits_item(provider), schema_item(event_name, fields)))
