"""EVTX file and chunk headers: the integrity check run before (and beside) the record parser.

The record parsers say little about damage: the Rust `evtx` parser silently stops at a truncated
chunk and names bad chunks by ordinal, python-evtx trusts the file header's chunk count (which is
stale in logs copied while open, so it misses whole chunks). Reading the 4 KiB file header and
each 64 KiB chunk header ourselves gives the facts an examiner needs: which chunk, at which
offset, is damaged, and how many records the intact chunks hold.
"""
from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

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

    @property
    def damaged(self) -> bool:
        return bool(self.problems or self.header_problem)


def scan_chunks(fh: BinaryIO, size: int) -> ChunkScan:
    """Check the file header and every chunk header; never raises on damaged data."""
    scan = ChunkScan(size=size)
    fh.seek(0)
    head = fh.read(FILE_HEADER_SIZE)
    if len(head) < 0x80 or not head.startswith(FILE_MAGIC):
        scan.header_problem = "not an EVTX file (no ElfFile header)"
        return scan
    fields = _FILE_HEADER.unpack_from(head, 0)
    scan.header_chunk_count = fields[8]
    flags, crc = _FILE_FLAGS.unpack_from(head, 0x78)
    scan.dirty = bool(flags & 1)
    if crc != zlib.crc32(head[:0x78]):
        scan.header_problem = "file header checksum mismatch"
    index = 0
    offset = FILE_HEADER_SIZE
    buf = bytearray(CHUNK_SIZE)  # one buffer, read into: the scan copies nothing per chunk
    view = memoryview(buf)
    while offset < size:
        fh.seek(offset)
        got = fh.readinto(buf) or 0
        problem = _check_chunk(view[:got], index, scan)
        if problem:
            scan.problems.append(ChunkProblem(offset, index, problem))
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
        if chunk.obj.count(0, 0, len(chunk)) == len(chunk) and index >= scan.header_chunk_count:
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
    if header_crc != zlib.crc32(chunk[0x80:CHUNK_HEADER_SIZE], zlib.crc32(chunk[:0x78])):
        return "chunk header checksum mismatch"
    if not CHUNK_HEADER_SIZE <= free_off <= CHUNK_SIZE:
        return f"chunk free-space offset {free_off:#x} out of range"
    if data_crc != zlib.crc32(chunk[CHUNK_HEADER_SIZE:free_off]):
        return "chunk records checksum mismatch"
    if last_no >= first_no:
        scan.records_in_intact_chunks += last_no - first_no + 1
    return ""
