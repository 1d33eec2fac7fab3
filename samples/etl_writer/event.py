"""One manifest-based ETW event and its packed record: EVENT_HEADER, the extended data items
the session asked for (when any), then the UserData."""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field

from .payload import Field, encode_fields
from .structs import (EVENT_HEADER, EXT_ITEM_HEADER, FLAG_EXTENDED_INFO, MARKER_FLAGS,
                      TYPE_EVENT_HEADER64, aligned)

# Channel ids every manifest shares (winmeta.xml): the admin logs.
CHANNEL_SYSTEM, CHANNEL_APPLICATION, CHANNEL_SECURITY = 8, 9, 10
LEVEL_ERROR, LEVEL_INFO = 2, 4


EXT_SID, EXT_TS_ID = 2, 3  # EVENT_HEADER_EXT_TYPE_SID, EVENT_HEADER_EXT_TYPE_TS_ID


@dataclass(frozen=True)
class ExtItem:
    """An extended data item the session adds (EnableProperty SID, TS_ID, ...)."""

    ext_type: int
    data: bytes


def sid_item(sid: str) -> ExtItem:
    _, rev, auth, *subs = sid.split("-")
    body = bytes((int(rev), len(subs))) + int(auth).to_bytes(6, "big")
    return ExtItem(EXT_SID, body + b"".join(int(s).to_bytes(4, "little") for s in subs))


def session_item(session_id: int) -> ExtItem:
    return ExtItem(EXT_TS_ID, session_id.to_bytes(4, "little"))


def pack_items(items: tuple[ExtItem, ...]) -> bytes:
    """Items back to back, each 8-aligned; the linkage bit says another one follows."""
    out = b""
    for n, item in enumerate(items):
        size = aligned(EXT_ITEM_HEADER.size + len(item.data))
        more = 1 if n < len(items) - 1 else 0
        body = EXT_ITEM_HEADER.pack(size, item.ext_type, more, len(item.data)) + item.data
        out += body + b"\0" * (size - len(body))
    return out


@dataclass(frozen=True)
class EtwEvent:
    """A manifest event as a provider writes it. `fields` follow the manifest template order."""

    provider: uuid.UUID
    provider_name: str  # for the plan and the tests; not stored in the record
    event_id: int
    version: int
    time: _dt.datetime  # UTC
    fields: tuple[Field, ...] = ()
    channel: int = 0
    level: int = LEVEL_INFO
    opcode: int = 0
    task: int = 0
    keywords: int = 0
    process_id: int = 0
    thread_id: int = 0
    kernel_time: int = 0
    user_time: int = 0
    activity: uuid.UUID = field(default=uuid.UUID(int=0))
    extended: tuple[ExtItem, ...] = ()
    event_name: str = ""  # TraceLogging events are known by name (in their schema item)

    def payload(self) -> bytes:
        return encode_fields(self.fields)

    def record(self, timestamp: int) -> bytes:
        """The packed record; `timestamp` is the session clock's value (QPC ticks)."""
        payload = pack_items(self.extended) + self.payload()
        size = EVENT_HEADER.size + len(payload)
        if size > 0xFFFF:
            raise ValueError(f"event {self.event_id} too large for one record ({size} bytes)")
        flags = FLAG_EXTENDED_INFO if self.extended else 0
        header = EVENT_HEADER.pack(
            size, TYPE_EVENT_HEADER64, MARKER_FLAGS, flags, 0, self.thread_id, self.process_id,
            timestamp, self.provider.bytes_le, self.event_id, self.version, self.channel,
            self.level, self.opcode, self.task, self.keywords, self.kernel_time,
            self.user_time, self.activity.bytes_le)
        return header + payload

    def values(self) -> dict[str, object]:
        return {f.name: f.value for f in self.fields}
