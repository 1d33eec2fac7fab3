"""One manifest-based ETW event and its packed record (EVENT_HEADER + UserData)."""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field

from .payload import Field, encode_fields
from .structs import EVENT_HEADER, MARKER_FLAGS, TYPE_EVENT_HEADER64

# Channel ids every manifest shares (winmeta.xml): the admin logs.
CHANNEL_SYSTEM, CHANNEL_APPLICATION, CHANNEL_SECURITY = 8, 9, 10
LEVEL_ERROR, LEVEL_INFO = 2, 4


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

    def payload(self) -> bytes:
        return encode_fields(self.fields)

    def record(self, timestamp: int) -> bytes:
        """The packed record; `timestamp` is the session clock's value (QPC ticks)."""
        payload = self.payload()
        size = EVENT_HEADER.size + len(payload)
        if size > 0xFFFF:
            raise ValueError(f"event {self.event_id} too large for one record ({size} bytes)")
        header = EVENT_HEADER.pack(
            size, TYPE_EVENT_HEADER64, MARKER_FLAGS, 0, 0, self.thread_id, self.process_id,
            timestamp, self.provider.bytes_le, self.event_id, self.version, self.channel,
            self.level, self.opcode, self.task, self.keywords, self.kernel_time,
            self.user_time, self.activity.bytes_le)
        return header + payload

    def values(self) -> dict[str, object]:
        return {f.name: f.value for f in self.fields}
