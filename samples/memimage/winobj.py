"""Writing Windows objects into an address space through the ISF declarations.

Every field is addressed by name (`"Core.u.VadFlags.Protection"`); offsets come from `isf`, so a
layout is declared once and the image and its symbol table cannot disagree.
"""
from __future__ import annotations

import struct

from memimage import isf
from memimage.paging import PAGE, AddressSpace, canonical

_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_SFMT = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}


def put(space: AddressSpace, type_name: str, address: int, **fields: int | bytes) -> None:
    """Write named members (dots become `__` in keyword names is not needed: pass a dict)."""
    put_fields(space, type_name, address, fields)


def put_fields(space: AddressSpace, type_name: str, address: int,
               fields: dict[str, int | bytes]) -> None:
    for path, value in fields.items():
        off, t = isf.resolve(type_name, path)
        at = address + off
        if isinstance(value, (bytes, bytearray)):
            space.write(at, bytes(value))
            continue
        if t["kind"] == "bitfield":
            size = isf.type_size(t["type"])
            cur = int.from_bytes(space.read(at, size), "little")
            mask = ((1 << t["bit_length"]) - 1) << t["bit_position"]
            cur = (cur & ~mask) | ((value << t["bit_position"]) & mask)
            space.write(at, cur.to_bytes(size, "little"))
            continue
        size = isf.type_size(t)
        if t["kind"] == "pointer":
            value = canonical(value) if value else 0
        fmt = _SFMT[size] if value < 0 else _FMT[size]
        space.write(at, struct.pack(fmt, value))


def size_of(type_name: str) -> int:
    return isf.type_size(isf.st(type_name))


def offset_of(type_name: str, path: str) -> int:
    return isf.resolve(type_name, path)[0]


class Heap:
    """A bump allocator over a virtual range, mapping fresh frames on demand.

    Kernel pool blocks carry a 16-byte _POOL_HEADER whose tag Volatility reads 12 bytes before
    a VAD node to decide between _MMVAD_SHORT and _MMVAD.
    """

    def __init__(self, space: AddressSpace, base: int, *, user: bool) -> None:
        self.space, self.base, self.user = space, base, user
        self._next = base

    def alloc(self, size: int, tag: bytes | None = None, align: int = 16) -> int:
        header = 16 if tag is not None else 0
        start = (self._next + align - 1) & ~(align - 1)
        addr = start + header
        end = addr + size
        self.space.alloc_map(start & ~(PAGE - 1),
                             ((end + PAGE - 1) & ~(PAGE - 1)) - (start & ~(PAGE - 1)),
                             user=self.user)
        if tag is not None:
            # _POOL_HEADER: PreviousSize/PoolIndex/BlockSize/PoolType then the 4-byte tag at +4
            block = (size + header + 15) // 16
            self.space.write(start, struct.pack("<BBBB4s", 0, 0, block & 0xFF, 2, tag))
        self._next = end
        return addr

    def unicode(self, text: str) -> tuple[int, int, int]:
        """Store a UTF-16 string; returns (buffer, Length, MaximumLength)."""
        raw = text.encode("utf-16-le")
        buf = self.alloc(len(raw) + 2, align=8)
        self.space.write(buf, raw + b"\0\0")
        return buf, len(raw), len(raw) + 2


def unicode_fields(prefix: str, heap: Heap, text: str) -> dict[str, int]:
    buf, length, maxlen = heap.unicode(text)
    return {f"{prefix}.Buffer": buf, f"{prefix}.Length": length,
            f"{prefix}.MaximumLength": maxlen}


def link_list(space: AddressSpace, head: int, entries: list[int]) -> None:
    """Make a circular doubly linked LIST_ENTRY list: head → entries → head."""
    nodes = [head, *entries]
    for i, node in enumerate(nodes):
        nxt = nodes[(i + 1) % len(nodes)]
        prv = nodes[i - 1]
        put_fields(space, "_LIST_ENTRY", node, {"Flink": nxt, "Blink": prv})
