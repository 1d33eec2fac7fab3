"""LZNT1 compression ([MS-XCA] 2.5), the format compressed ETW traces use for their buffers.

4 KiB chunks, each with a 16-bit header (size - 3, signature 3, bit 15 = compressed); in a
compressed chunk a flag byte precedes every eight tokens, a set bit marking a 16-bit copy token
whose split between displacement and length bits depends on the position in the chunk. Greedy
matching on 3-byte prefixes: small and deterministic, not tuned for ratio.
"""
from __future__ import annotations

import struct

CHUNK = 4096


def compress(data: bytes) -> bytes:
    out = bytearray()
    for start in range(0, len(data), CHUNK):
        chunk = data[start:start + CHUNK]
        body = _chunk(chunk)
        if len(body) >= len(chunk):  # stored: header says size - 1
            out += struct.pack("<H", 0x3000 | (len(chunk) - 1)) + chunk
        else:
            out += struct.pack("<H", 0xB000 | (len(body) + 2 - 3)) + body
    return bytes(out)


def _length_bits(pos: int) -> int:
    """How many of a copy token's 16 bits are length at this position in the chunk."""
    shift, p = 12, pos - 1
    while p >= 0x10:
        p >>= 1
        shift -= 1
    return shift


def _chunk(chunk: bytes) -> bytes:
    body = bytearray()
    seen: dict[bytes, int] = {}
    pos = 0
    while pos < len(chunk):
        flag_at = len(body)
        body.append(0)
        for bit in range(8):
            if pos >= len(chunk):
                break
            bits = _length_bits(pos) if pos else 12
            best = 0
            cand = seen.get(chunk[pos:pos + 3]) if pos + 3 <= len(chunk) else None
            if cand is not None:
                limit = min((1 << bits) - 1 + 3, len(chunk) - pos)
                while best < limit and chunk[cand + best] == chunk[pos + best]:
                    best += 1
            for p in range(pos, pos + max(best, 1)):
                if p + 3 <= len(chunk):
                    seen[chunk[p:p + 3]] = p
            if best >= 3:
                body[flag_at] |= 1 << bit
                body += struct.pack("<H", ((pos - cand - 1) << bits) | (best - 3))
                pos += best
            else:
                body.append(chunk[pos])
                pos += 1
    return bytes(body)
