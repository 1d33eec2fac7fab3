"""Marvin32, the 64-bit keyed hash Windows uses for registry transaction log entries.

A log entry (new format, Windows 8.1+) carries two Marvin32 hashes with the seed
0x82EF4D887A4E55C5: hash-1 over its dirty page references and pages, hash-2 over its first 32
bytes (Maxim Suhanov, "Windows registry file format specification", github.com/msuhanov/regf,
"Log entries", notes 1-3). The algorithm is Microsoft's (published in SymCrypt and the .NET
runtime, whose tests give the vectors tests/evtx/test_evtx_hive_log.py checks).
"""
from __future__ import annotations

import struct
from itertools import chain

REGISTRY_SEED = 0x82EF4D887A4E55C5
_M = 0xFFFFFFFF


def marvin32(data: bytes | bytearray | memoryview, seed: int = REGISTRY_SEED) -> int:
    """The 64-bit hash (high state word << 32 | low state word) of `data`."""
    lo, hi = seed & _M, seed >> 32
    view = memoryview(data).cast("B")
    whole = len(view) // 4 * 4
    final = 0x80
    for byte in reversed(bytes(view[whole:])):  # the tail bytes, then the 0x80 pad byte
        final = (final << 8) | byte
    words = chain((w for (w,) in struct.iter_unpack("<I", view[:whole])), (final, 0))
    # a tight local loop: one round per 4 bytes (about 0.3 s per MiB)
    for word in words:
        lo = (lo + word) & _M
        hi ^= lo
        lo = (((lo << 20) | (lo >> 12)) & _M) + hi & _M
        hi = (((hi << 9) | (hi >> 23)) & _M) ^ lo
        lo = (((lo << 27) | (lo >> 5)) & _M) + hi & _M
        hi = ((hi << 19) | (hi >> 13)) & _M
    return (hi << 32) | lo
