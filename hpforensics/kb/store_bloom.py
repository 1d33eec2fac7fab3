"""Bloom filter over the store's digests: a lookup of a page no stored image has (a module the
store does not know, a modified page) is answered without touching the SQLite index.

The digests are SHA-256 values, uniformly distributed, so the k bit positions are simply k of
their 32-bit words: no hashing needed, and numpy tests a whole batch at once. The filter lives in
the store (table `bloom`), is written in the same transaction as the pages it covers, and
records how many pages it covers; a filter that does not cover every page is not used.
"""
from __future__ import annotations

import logging
import sqlite3
from itertools import compress

import numpy as np

log = logging.getLogger(__name__)

BITS_PER_PAGE = 12  # with K = 8: about 0.35 % false positives at capacity
K = 8
MIN_BITS = 1 << 16
SCHEMA = ("CREATE TABLE IF NOT EXISTS bloom(id INTEGER PRIMARY KEY CHECK (id = 1), "
          "pages INTEGER NOT NULL, capacity INTEGER NOT NULL, bits BLOB NOT NULL)")


def _words(digests: list[bytes]) -> np.ndarray:
    """(n, K) uint32 positions source: the K 32-bit words of each 32-byte digest."""
    joined = b"".join(digests)
    if len(joined) != 4 * K * len(digests):
        raise ValueError("bloom filter digests must be 32 bytes")
    return np.frombuffer(joined, dtype="<u4").reshape(-1, K)


class Bloom:
    def __init__(self, capacity: int, bits: np.ndarray | None = None, pages: int = 0) -> None:
        m = MIN_BITS
        while m < capacity * BITS_PER_PAGE:
            m <<= 1
        self.capacity = capacity
        self.mask = np.uint32(m - 1)  # m is a power of two: position = word & (m - 1)
        self.bits = bits if bits is not None else np.zeros(m // 8, np.uint8)
        self.pages = pages

    def add(self, digests: list[bytes]) -> None:
        if not digests:
            return
        pos = (_words(digests) & self.mask).ravel()
        idx, bit = pos >> 3, pos & 7
        # One fancy-index OR per bit value: repeated indices within a group carry the same
        # value, so the buffered assignment is still exact (ufunc.at is ten times slower).
        for b in range(8):
            sel = idx[bit == b]
            self.bits[sel] |= np.uint8(1 << b)
        self.pages += len(digests)

    def might_contain(self, digests: list[bytes]) -> np.ndarray:
        """Boolean per digest: False means certainly absent."""
        if not digests:
            return np.zeros(0, bool)
        pos = _words(digests) & self.mask
        return ((self.bits[pos >> 3] >> (pos & 7).astype(np.uint8)) & 1).all(axis=1)

    @property
    def full(self) -> bool:
        return self.pages > self.capacity

    # persistence ------------------------------------------------------------------------------
    @classmethod
    def load(cls, db: sqlite3.Connection, pages: int) -> "Bloom | None":
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'bloom'").fetchone():
            return None  # a store written before the filter existed, or still empty
        row = db.execute("SELECT pages, capacity, bits FROM bloom WHERE id = 1").fetchone()
        if row is None or row[0] != pages:
            return None  # missing or stale: every page must be covered, or the filter lies
        covered, capacity, blob = row
        return cls(capacity, np.frombuffer(blob, np.uint8).copy(), covered)

    def save(self, db: sqlite3.Connection) -> None:
        db.execute(SCHEMA)
        db.execute("INSERT OR REPLACE INTO bloom(id, pages, capacity, bits) VALUES (1, ?, ?, ?)",
                   (self.pages, self.capacity, self.bits.tobytes()))

    @classmethod
    def rebuild(cls, db: sqlite3.Connection, pages: int) -> "Bloom":
        """A filter sized for twice the current pages, filled from every stored digest."""
        bloom = cls(max(pages * 2, 1024))
        cur = db.execute("SELECT digest FROM pages")
        while True:
            chunk = [d for (d,) in cur.fetchmany(100_000)]
            if not chunk:
                break
            bloom.add(chunk)
        log.debug("bloom filter rebuilt: %d pages, %d bits", bloom.pages, bloom.bits.size * 8)
        return bloom


def filter_absent(bloom: Bloom | None, digests: list[bytes]) -> list[bytes]:
    """The digests the store may hold (all of them when there is no filter)."""
    if bloom is None:
        return digests
    try:
        keep = bloom.might_contain(digests)
    except ValueError:  # digests of another size: let the index answer (they match nothing)
        return digests
    return list(compress(digests, keep.tolist()))
