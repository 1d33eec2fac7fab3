"""EvtxWriter: records in, a complete .evtx file out (file header + 64 KiB chunks)."""
from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path
from typing import Iterable

from .chunk import Chunk
from .event import Event, signature

log = logging.getLogger(__name__)

FILE_HEADER_BLOCK = 0x1000
_FILE_HDR = struct.Struct("<8sQQQIHHHH")  # magic, first/last chunk, next record id, sizes, count


class EvtxWriter:
    """Write events to `path` in order; record ids run from `first_record_id` upwards.

    Use as a context manager or call close(). Output depends only on the events given.
    """

    def __init__(self, path: str | Path, first_record_id: int = 1, dirty: bool = False) -> None:
        self.path = Path(path)
        self.next_id = first_record_id
        self.dirty = dirty
        self._chunk = Chunk(first_record_id)
        self._fh = open(self.path, "wb")
        self._fh.write(bytes(FILE_HEADER_BLOCK))
        self._chunks = 0
        self.records = 0

    def add(self, event: Event) -> int:
        """Append one event; returns its EventRecordID."""
        rid = self.next_id
        key, shape, values = signature(event, rid)
        if not self._chunk.try_add(rid, key, shape, values, event.time):
            self._flush_chunk()
            self._chunk = Chunk(rid)
            if not self._chunk.try_add(rid, key, shape, values, event.time):
                raise AssertionError("an empty chunk refused a record")
        self.next_id += 1
        self.records += 1
        return rid

    def extend(self, events: Iterable[Event]) -> None:
        for e in events:
            self.add(e)

    def _flush_chunk(self) -> None:
        self._fh.write(self._chunk.finish())
        self._chunks += 1

    def close(self) -> None:
        if self._fh.closed:
            return
        if self._chunk.count or not self._chunks:
            self._flush_chunk()
        hdr = bytearray(0x80)
        _FILE_HDR.pack_into(
            hdr, 0, b"ElfFile\x00", 0, self._chunks - 1, self.next_id, 0x80, 2, 3,
            FILE_HEADER_BLOCK, self._chunks,
        )
        struct.pack_into("<I", hdr, 0x78, 1 if self.dirty else 0)
        struct.pack_into("<I", hdr, 0x7C, zlib.crc32(hdr[:0x78]))
        self._fh.seek(0)
        self._fh.write(hdr)
        self._fh.close()
        log.debug("%s: %d records in %d chunks", self.path, self.records, self._chunks)

    def __enter__(self) -> "EvtxWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_evtx(path: str | Path, events: Iterable[Event], first_record_id: int = 1) -> int:
    """Write all `events` to `path`; returns the number of records."""
    with EvtxWriter(path, first_record_id) as w:
        w.extend(events)
        return w.records
