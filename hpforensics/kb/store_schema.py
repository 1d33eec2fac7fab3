"""SQLite schema of the page-hash store, declared once, and the packed form of loader masks."""
from __future__ import annotations

import sqlite3
import struct
import zlib

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,               -- lower-case file name, e.g. ntdll.dll
    timestamp INTEGER NOT NULL,       -- FILE_HEADER.TimeDateStamp
    size_of_image INTEGER NOT NULL,   -- OPTIONAL_HEADER.SizeOfImage
    checksum INTEGER NOT NULL,
    machine INTEGER NOT NULL,
    file_version TEXT NOT NULL DEFAULT '',
    sha256 TEXT NOT NULL DEFAULT '',  -- of the file, hex
    path TEXT NOT NULL DEFAULT '',    -- where it was imported from
    n_pages INTEGER NOT NULL,
    mask BLOB NOT NULL,               -- loader mask, packed RVA ranges (pack_ranges)
    UNIQUE(name, timestamp, size_of_image)
);
CREATE TABLE pages(
    image_id INTEGER NOT NULL REFERENCES images(id),
    rva INTEGER NOT NULL,
    digest BLOB NOT NULL,             -- normalised page digest (meta.algo)
    zero INTEGER NOT NULL DEFAULT 0,  -- 1: page is all zero after masking
    PRIMARY KEY(image_id, rva)
) WITHOUT ROWID;
CREATE INDEX pages_digest ON pages(digest);
CREATE TABLE image_kbs(
    image_id INTEGER NOT NULL REFERENCES images(id),
    kb TEXT NOT NULL,
    PRIMARY KEY(image_id, kb)
) WITHOUT ROWID;
CREATE INDEX image_kbs_kb ON image_kbs(kb);
"""


def create_schema(db: sqlite3.Connection, algo: str) -> None:
    db.executescript(_SCHEMA)
    db.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        [("schema_version", str(SCHEMA_VERSION)), ("algo", algo), ("page_size", "4096"),
         ("normalisation", "loader mask: base relocations, IAT, dynamic relocations zeroed")],
    )
    db.commit()


def pack_mask(mask: bytes | list[tuple[int, int]]) -> bytes:
    """A loader mask, bitmap (b"B" + zlib) or RVA ranges (b"R" + zlib of u32 pairs)."""
    if isinstance(mask, (bytes, bytearray)):
        return b"B" + zlib.compress(bytes(mask))
    flat = [v for r in mask for v in r]
    return b"R" + zlib.compress(struct.pack(f"<{len(flat)}I", *flat))


def unpack_mask(blob: bytes) -> bytes | list[tuple[int, int]]:
    raw = zlib.decompress(blob[1:])
    if blob[:1] == b"B":
        return raw
    flat = struct.unpack(f"<{len(raw) // 4}I", raw)
    return list(zip(flat[0::2], flat[1::2]))
