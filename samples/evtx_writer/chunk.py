"""One 64 KiB ElfChnk: string table, template table, records, and the two checksums.

Layout (libyal "Windows XML Event Log (EVTX) format", section "Chunk"): a 512-byte header
(0x80 bytes of fields, 64 string-table bucket offsets, 32 template-table bucket offsets), then
event records. Names and template definitions live inline in the first record that uses them
and are found again through the two hash tables by every later record of the same chunk.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Sequence

from .event import Node
from .values import _ENCODERS, Value, to_filetime

CHUNK_SIZE = 0x10000
CHUNK_HEADER_SIZE = 0x200
RECORD_MAGIC = 0x00002A2A
# magic, first/last number, first/last id, hdr size, last, free, crc
_HDR = struct.Struct("<8sQQQQIIII")
_STREAM_START = b"\x0f\x01\x01\x00"
_DESC = struct.Struct("<HBB").pack  # substitution descriptor: size, value type, padding

# Template GUID and id are a pure function of the shape, so output is deterministic; cached
# by the event's flat signature key.
_TEMPLATE_IDS: dict[tuple, tuple[int, bytes]] = {}


def name_hash(name: str) -> int:
    """The 16-bit name hash of the chunk string table (x 65599 + UTF-16 code unit)."""
    h = 0
    for c in name.encode("utf-16-le")[::2] if name.isascii() else _units(name):
        h = (h * 65599 + c) & 0xFFFFFFFF
    return h & 0xFFFF


def _units(name: str) -> list[int]:
    raw = name.encode("utf-16-le")
    return [raw[i] | raw[i + 1] << 8 for i in range(0, len(raw), 2)]


def template_identity(key: tuple, shape: Node) -> tuple[int, bytes]:
    ident = _TEMPLATE_IDS.get(key)
    if ident is None:
        g = hashlib.md5(repr(shape).encode("utf-8")).digest()
        ident = (struct.unpack_from("<I", g)[0], g)
        _TEMPLATE_IDS[key] = ident
    return ident


class RecordTooLarge(ValueError):
    pass


class _Staging:
    """Names and templates a record adds; committed to the chunk only if the record fits."""

    __slots__ = ("names", "str_heads", "template")

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.str_heads: dict[int, int] = {}
        self.template: tuple[tuple, int, int] | None = None


class Chunk:
    def __init__(self, first_record_id: int) -> None:
        self.buf = bytearray(CHUNK_SIZE)
        self.pos = CHUNK_HEADER_SIZE
        self.first_id = first_record_id
        self.last_id = first_record_id - 1
        self.last_record_offset = 0
        self.names: dict[str, int] = {}
        self.str_heads = [0] * 64
        self.templates: dict[tuple, int] = {}  # signature key -> definition offset
        self.tpl_heads = [0] * 32

    @property
    def count(self) -> int:
        return self.last_id - self.first_id + 1

    # -- binary XML of a template definition ------------------------------------------------
    def _name(self, out: bytearray, base: int, name: str, st: _Staging) -> None:
        off = self.names.get(name) or st.names.get(name)
        if off is not None:
            out += struct.pack("<I", off)
            return
        off = base + len(out) + 4  # the name follows its own offset field
        h = name_hash(name)
        bucket = h % 64
        nxt = st.str_heads.get(bucket, self.str_heads[bucket])
        enc = name.encode("utf-16-le")
        out += struct.pack("<IIHH", off, nxt, h, len(enc) // 2) + enc + b"\x00\x00"
        st.names[name] = off
        st.str_heads[bucket] = off

    def _value_node(self, out: bytearray, node: Node) -> None:
        if node[0] == "T":
            enc = node[1].encode("utf-16-le")
            out += struct.pack("<BBH", 0x05, 0x01, len(enc) // 2) + enc
        else:  # optional substitution: index, value type
            out += struct.pack("<BHB", 0x0E, node[1], node[2])

    def _element(self, out: bytearray, base: int, el: Node, st: _Staging) -> None:
        _, name, attrs, kids = el
        out.append(0x41 if attrs else 0x01)
        out += b"\xff\xff"  # dependency id: no optional substitution removes the element
        size_at = len(out)
        out += b"\x00\x00\x00\x00"
        self._name(out, base, name, st)
        if attrs:
            alist_at = len(out)
            out += b"\x00\x00\x00\x00"
            for i, (an, av) in enumerate(attrs):
                out.append(0x46 if i + 1 < len(attrs) else 0x06)
                self._name(out, base, an, st)
                self._value_node(out, av)
            struct.pack_into("<I", out, alist_at, len(out) - alist_at - 4)
        if kids:
            out.append(0x02)
            for k in kids:
                if k[0] == "E":
                    self._element(out, base, k, st)
                else:
                    self._value_node(out, k)
            out.append(0x04)
        else:
            out.append(0x03)
        struct.pack_into("<I", out, size_at, len(out) - size_at - 4)

    # -- records ------------------------------------------------------------------------------
    def try_add(self, record_id: int, key: tuple, shape: Node, values: Sequence[Value],
                written) -> bool:
        """Append one record; False (chunk untouched) when it does not fit."""
        base = self.pos
        st = _Staging()
        out = bytearray(24)
        out += _STREAM_START
        tid, tguid = template_identity(key, shape)
        known = self.templates.get(key)
        if known is not None:
            out += struct.pack("<BBII", 0x0C, 0x01, tid, known)
        else:
            def_off = base + len(out) + 10
            out += struct.pack("<BBII", 0x0C, 0x01, tid, def_off)
            bucket = tid % 32
            out += struct.pack("<I", self.tpl_heads[bucket]) + tguid + b"\x00\x00\x00\x00"
            data_at = len(out)
            out += _STREAM_START
            self._element(out, base, shape, st)
            out.append(0x00)
            struct.pack_into("<I", out, data_at - 4, len(out) - data_at)
            st.template = (key, def_off, bucket)
        encoded = [_ENCODERS[v[0]](v[1]) for v in values]
        if any(len(e) > 0xFFFF for e in encoded):
            raise RecordTooLarge(f"record {record_id}: a value over 65535 bytes (the descriptor "
                                 "size is 16 bits)")
        out += struct.pack("<I", len(values))
        out += b"".join([_DESC(len(e), v[0], 0) for e, v in zip(encoded, values)])
        out += b"".join(encoded)
        out.append(0x00)  # end of stream
        out += bytes(-(len(out) + 4) % 8)
        size = len(out) + 4
        if size > CHUNK_SIZE - CHUNK_HEADER_SIZE:
            raise RecordTooLarge(f"record {record_id} is {size} bytes, more than a chunk holds")
        if base + size > CHUNK_SIZE:
            return False
        out += struct.pack("<I", size)
        struct.pack_into("<IIQQ", out, 0, RECORD_MAGIC, size, record_id, to_filetime(written))
        self.buf[base:base + size] = out
        self.pos = base + size
        self.last_record_offset = base
        self.last_id = record_id
        self.names.update(st.names)
        for b, off in st.str_heads.items():
            self.str_heads[b] = off
        if st.template is not None:
            k, off, bucket = st.template
            self.templates[k] = off
            self.tpl_heads[bucket] = off
        return True

    def finish(self) -> bytes:
        """Header fields and both CRC32s; the chunk is final after this."""
        b = self.buf
        struct.pack_into("<64I", b, 0x80, *self.str_heads)
        struct.pack_into("<32I", b, 0x180, *self.tpl_heads)
        data_crc = zlib.crc32(b[CHUNK_HEADER_SIZE:self.pos])
        _HDR.pack_into(
            b, 0, b"ElfChnk\x00", self.first_id, self.last_id, self.first_id, self.last_id,
            0x80, self.last_record_offset, self.pos, data_crc,
        )
        struct.pack_into("<I", b, 0x78, 1)  # flags as Windows leaves them on closed chunks
        crc = zlib.crc32(b[0:0x78] + b[0x80:CHUNK_HEADER_SIZE])
        struct.pack_into("<I", b, 0x7C, crc)
        return bytes(b)
