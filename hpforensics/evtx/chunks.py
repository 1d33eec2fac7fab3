"""EVTX file and chunk headers: the integrity check run before (and beside) the record parser.

The record parsers say little about damage: the Rust `evtx` parser silently stops at a truncated
chunk and names bad chunks by ordinal, python-evtx trusts the file header's chunk count (which is
stale in logs copied while open, so it misses whole chunks). Reading the 4 KiB file header and
each 64 KiB chunk header ourselves gives the facts an examiner needs: which chunk, at which
offset, is damaged, and how many records the intact chunks hold.
"""
from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Union


try:  # every byte of every log is CRC-checked: zlib-ng folds with PCLMUL, ~5x zlib's speed
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - a platform without a zlib-ng wheel
    from zlib import crc32

log = logging.getLogger(__name__)

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER_SIZE = 0x1000
CHUNK_SIZE = 0x10000
CHUNK_HEADER_SIZE = 0x200

# File header (first 128 bytes are covered by its CRC32 at 0x7C).
_FILE_HEADER = struct.Struct("<8sQQQIHHHH")  # magic, first chunk, last chunk, next record id,
#                                              header size, minor, major, block size, chunk count
_FILE_FLAGS = struct.Struct("<II")  # at 0x78: flags (1 = dirty, 2 = full), header CRC32
# Chunk header: magic, first/last record number, first/last record id, header size,
# last record offset, free space offset, records CRC32; header CRC32 at 0x7C covers
# 0x00-0x78 and 0x80-0x200.
_CHUNK_HEADER = struct.Struct("<8sQQQQIIII")
_CHUNK_CRC = struct.Struct("<I")
# Record header: magic b"**\0\0", size (the size is repeated at the record's end), record id,
# FILETIME.
_RECORD_HEAD = struct.Struct("<4sI")
RECORD_SIZE = struct.Struct("<I")  # at +4, repeated in the record's last four bytes
RECORD_MAGIC = b"**\x00\x00"


@dataclass
class ChunkProblem:
    offset: int
    index: int
    reason: str


@dataclass
class ChunkScan:
    """What the headers say about one EVTX file."""

    size: int
    header_chunk_count: int = 0
    dirty: bool = False
    chunks_present: int = 0  # chunks with a valid magic
    records_in_intact_chunks: int = 0
    problems: list[ChunkProblem] = field(default_factory=list)
    header_problem: str = ""
    # With a `wanted` test: offsets of the intact chunks it kept, and the records of those it
    # ruled out (counted from their record headers, as the parser walks them); with a record
    # selector, the size patches of each kept chunk and the records the patches step over.
    wanted_offsets: list[int] = field(default_factory=list)
    unwanted_records: int = 0
    patches: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    skipped_records: int = 0
    # chunk offset -> (the records decode() may read, the records the parser would return)
    native: dict[int, tuple[tuple[int, ...], int]] = field(default_factory=dict)

    @property
    def damaged(self) -> bool:
        return bool(self.problems or self.header_problem)


@dataclass(frozen=True)
class RecordPick:
    """What the selector made of one intact chunk."""

    records: int  # records the parser would walk in the whole chunk
    parsed: int  # records the parser will still read (the kept ones, plus the first one)
    patches: tuple[tuple[int, int], ...]  # (record offset, size the parser is to see)
    # The records a rule selected, when every record the parser would read here is either one
    # of them or not relevant: then `_evtxscan.decode` may read them instead (select.py).
    native: tuple[int, ...] | None = None


def apply_patches(chunk: bytearray, patches: tuple[tuple[int, int], ...]) -> None:
    """Write the patched size fields of a chunk's records: the size in the record header and
    its copy in the record's last four bytes."""
    for start, size in patches:
        RECORD_SIZE.pack_into(chunk, start + 4, size)
        RECORD_SIZE.pack_into(chunk, start + size - 4, size)


Wanted = Callable[[bytearray], Union[bool, RecordPick]]


def scan_chunks(fh: io.BufferedIOBase, size: int, wanted: Wanted | None = None,
                digest: Any = None) -> ChunkScan:
    """Check the file header and every chunk header; never raises on damaged data.

    `wanted(chunk)` (optional) is asked about every intact chunk while its bytes are at hand:
    a chunk it rules out (False) need never reach the record parser (see `SelectedChunks`);
    a RecordPick says which of its records the parser is to read. `digest` (a hashlib object)
    is fed every byte of the file on the way, so the input's hash costs no second read."""
    scan = ChunkScan(size=size)
    fh.seek(0)
    head = fh.read(FILE_HEADER_SIZE)
    if digest is not None:
        digest.update(head)
    if len(head) < 0x80 or not head.startswith(FILE_MAGIC):
        scan.header_problem = "not an EVTX file (no ElfFile header)"
        if digest is not None:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return scan
    fields = _FILE_HEADER.unpack_from(head, 0)
    scan.header_chunk_count = fields[8]
    flags, crc = _FILE_FLAGS.unpack_from(head, 0x78)
    scan.dirty = bool(flags & 1)
    if crc != crc32(head[:0x78]):
        scan.header_problem = "file header checksum mismatch"
    index = 0
    offset = FILE_HEADER_SIZE
    buf = bytearray(CHUNK_SIZE)  # one buffer, read into: the scan copies nothing per chunk
    view = memoryview(buf)
    while offset < size:
        fh.seek(offset)
        got = fh.readinto(buf) or 0
        if digest is not None:
            digest.update(view[:got])
        problem = _check_chunk(view[:got], index, scan)
        if problem:
            scan.problems.append(ChunkProblem(offset, index, problem))
        elif wanted is not None and got == CHUNK_SIZE and buf.startswith(CHUNK_MAGIC):
            choice = wanted(buf)
            if isinstance(choice, RecordPick):
                if choice.parsed:
                    scan.wanted_offsets.append(offset)
                    scan.patches[offset] = choice.patches
                    scan.skipped_records += choice.records - choice.parsed
                    if choice.native is not None:
                        scan.native[offset] = (choice.native, choice.parsed)
                else:
                    scan.unwanted_records += choice.records
            else:
                records = None if choice else count_records(view)
                if records is None:
                    scan.wanted_offsets.append(offset)
                else:
                    scan.unwanted_records += records
        offset += CHUNK_SIZE
        index += 1
    if index < scan.header_chunk_count and not scan.header_problem:
        # the file ends before the chunks its (checksummed) header counts: cut short
        scan.problems.append(ChunkProblem(size, index, f"file ends after {index} chunk(s) but its "
                                                       f"header counts {scan.header_chunk_count}"))
    return scan


def _check_chunk(chunk: memoryview, index: int, scan: ChunkScan) -> str:
    magic = bytes(chunk[:8])
    if magic != CHUNK_MAGIC:
        # Windows preallocates chunks: an all-zero chunk past the header's count is unused
        # space, one inside the count (or anything non-zero) is damage.
        if index >= scan.header_chunk_count and _all_zero(chunk):
            return ""
        if len(chunk) < CHUNK_SIZE:
            return f"file truncated inside this chunk ({len(chunk)} of {CHUNK_SIZE} bytes)"
        return "bad chunk header magic (zeroed)" if not magic.strip(b"\x00") else \
            f"bad chunk header magic {magic!r}"
    scan.chunks_present += 1
    if len(chunk) < CHUNK_SIZE:
        return f"file truncated inside this chunk ({len(chunk)} of {CHUNK_SIZE} bytes)"
    _, first_no, last_no, _, _, _, _, free_off, data_crc = _CHUNK_HEADER.unpack_from(chunk, 0)
    (header_crc,) = _CHUNK_CRC.unpack_from(chunk, 0x7C)
    if header_crc != crc32(chunk[0x80:CHUNK_HEADER_SIZE], crc32(chunk[:0x78])):
        return "chunk header checksum mismatch"
    if not CHUNK_HEADER_SIZE <= free_off <= CHUNK_SIZE:
        return f"chunk free-space offset {free_off:#x} out of range"
    if data_crc != crc32(chunk[CHUNK_HEADER_SIZE:free_off]):
        return "chunk records checksum mismatch"
    if last_no >= first_no:
        scan.records_in_intact_chunks += last_no - first_no + 1
    return ""


_ZERO_CHUNK = bytes(CHUNK_SIZE)


def _all_zero(chunk: memoryview) -> bool:
    """Whether every byte of a chunk read into the scan's buffer is zero. A full chunk is
    compared with a zero chunk (a memcmp, ~1 us; counting its zeros took ~33 us, and logs
    carry many preallocated chunks)."""
    if len(chunk) == CHUNK_SIZE and len(chunk.obj) == CHUNK_SIZE:  # type: ignore[arg-type]
        return chunk.obj == _ZERO_CHUNK
    return bytes(chunk) == bytes(len(chunk))


def count_records(chunk: memoryview) -> int | None:
    """Records of an intact chunk, walked the way the Rust parser walks them: from the end of
    the chunk header to its free-space offset, record size by record size, up to a zeroed
    record magic (slack). None when the walk meets anything else: then only the parser can
    say what the chunk holds."""
    _, _, _, _, _, _, _, free_off, _ = _CHUNK_HEADER.unpack_from(chunk, 0)
    end = min(free_off, len(chunk))
    offset, count = CHUNK_HEADER_SIZE, 0
    while end - offset >= 24:
        magic, size = _RECORD_HEAD.unpack_from(chunk, offset)
        if magic != RECORD_MAGIC:
            return count if magic == b"\x00\x00\x00\x00" else None
        if size < 28 or offset + size > end:
            return None
        count += 1
        offset += size
    return count if offset == end else None


class SelectedChunks(io.RawIOBase):
    """A read-only EVTX file made of the real file header and some of its chunks, read in
    place: the record parser sees only the chunks worth parsing. Chunk i of this view is the
    chunk at `offsets[i]` in the real file. `patches` (chunk offset -> record size patches,
    see evtx/select.py) are applied to the bytes handed out, never to the file."""

    def __init__(self, fh: io.BufferedIOBase, offsets: list[int],
                 patches: dict[int, tuple[tuple[int, int], ...]] | None = None) -> None:
        super().__init__()
        self._fh = fh
        self.offsets = offsets
        self._patches = patches or {}
        self._chunk = bytearray(CHUNK_SIZE)
        self._chunk_view = memoryview(self._chunk)
        self._cached = -1
        self._size = FILE_HEADER_SIZE + CHUNK_SIZE * len(offsets)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, out) -> int:
        view = memoryview(out).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            patches = None
            if self._pos < FILE_HEADER_SIZE:
                real, left = self._pos, FILE_HEADER_SIZE - self._pos
            else:
                index, within = divmod(self._pos - FILE_HEADER_SIZE, CHUNK_SIZE)
                real, left = self.offsets[index] + within, CHUNK_SIZE - within
                patches = self._patches.get(self.offsets[index])
            want = min(left, len(view) - done)
            if patches:
                chunk = self._patched(self.offsets[index], patches)
                got = len(chunk[within:within + want])
                view[done:done + got] = chunk[within:within + got]
            else:
                self._fh.seek(real)
                got = self._fh.readinto(view[done:done + want]) or 0
            if got == 0:
                break
            done += got
            self._pos += got
        return done

    def _patched(self, offset: int, patches: tuple[tuple[int, int], ...]) -> memoryview:
        """The chunk at `offset` with its size patches applied (the last one is kept: the
        parser reads a chunk in a few pieces)."""
        if self._cached != offset:
            self._fh.seek(offset)
            got = self._fh.readinto(self._chunk) or 0
            apply_patches(self._chunk, patches)
            self._cached = offset
            self._chunk_view = memoryview(self._chunk)[:got]
        return self._chunk_view

    def real_offset(self, index: int) -> int:
        """The real file offset of this view's chunk `index`."""
        return self.offsets[index] if 0 <= index < len(self.offsets) else \
            FILE_HEADER_SIZE + index * CHUNK_SIZE
