"""Lay out a key tree as a regf primary file: base block, hive bins, cells.

Cells are placed in one pre-order walk (a key's nk, its value list, values and data, its subkey
list, then its subkeys in name order), so a key's cells precede its subkeys' and the root key is
the first cell of the first bin, where Windows puts it (and where some readers look for it).
A bin that cannot hold the next cell is closed with one free cell. Sizes do not depend on
offsets, so offsets are assigned first and the cells rendered after.
"""
from __future__ import annotations

import bisect
import datetime as dt
import struct
from dataclasses import dataclass, field
from typing import Callable

# samples/ is on the path (regf_writer is imported from there): one FILETIME conversion
from evtx_writer.values import to_filetime as filetime

from . import structs as S


@dataclass
class Value:
    name: str
    type: int
    data: bytes

    @classmethod
    def dword(cls, name: str, number: int) -> "Value":
        return cls(name, S.REG_DWORD, struct.pack("<I", number))

    @classmethod
    def qword(cls, name: str, number: int) -> "Value":
        return cls(name, S.REG_QWORD, struct.pack("<Q", number))

    @classmethod
    def sz(cls, name: str, text: str) -> "Value":
        return cls(name, S.REG_SZ, (text + "\0").encode("utf-16-le"))

    @classmethod
    def multi_sz(cls, name: str, texts: list[str]) -> "Value":
        return cls(name, S.REG_MULTI_SZ, ("\0".join(texts) + "\0\0").encode("utf-16-le"))


@dataclass
class Key:
    name: str
    time: dt.datetime
    values: list[Value] = field(default_factory=list)
    subkeys: list["Key"] = field(default_factory=list)

    def add(self, path: str, time: dt.datetime, values: list[Value] | None = None) -> "Key":
        """The key at `path` below this one (made with `time` where missing); `values` added."""
        node = self
        for part in path.split("\\"):
            found = next((k for k in node.subkeys if k.name.lower() == part.lower()), None)
            if found is None:
                found = Key(part, time)
                node.subkeys.append(found)
            node = found
        node.values.extend(values or [])
        return node


@dataclass
class Written:
    """A hive's bytes and where things landed (file offsets of cells, for tests)."""

    data: bytes
    keys: dict[str, int]  # key path (below the root, '' for the root) -> its nk cell
    values: dict[tuple[str, str], int]  # (key path, value name) -> its vk cell
    bins: list[tuple[int, int]]  # (file offset, size) of each hive bin
    root: Key  # what was written


def _name(text: str) -> tuple[bytes, bool]:
    try:
        return text.encode("ascii"), True
    except UnicodeEncodeError:
        return text.encode("utf-16-le"), False


def _align(n: int) -> int:
    return (n + S.CELL_ALIGN - 1) // S.CELL_ALIGN * S.CELL_ALIGN


def _sid(authority: int, *subs: int) -> bytes:
    return bytes([1, len(subs)]) + authority.to_bytes(6, "big") + b"".join(
        struct.pack("<I", s) for s in subs)


def security_descriptor() -> bytes:
    """Self-relative descriptor: owner Administrators, group SYSTEM, a DACL giving SYSTEM and
    Administrators full control and Users read (what HKLM\\SOFTWARE keys commonly carry)."""
    system, admins, users = _sid(5, 18), _sid(5, 32, 544), _sid(5, 32, 545)
    aces = b""
    for mask, sid in ((0xF003F, system), (0xF003F, admins), (0x20019, users)):
        aces += struct.pack("<BBHI", 0, 0x02, 8 + len(sid), mask) + sid  # allowed, inherit
    dacl = struct.pack("<BBHHH", 2, 0, 8 + len(aces), 3, 0) + aces
    head = 20
    return (struct.pack("<BBHIIII", 1, 0, 0x8004, head + len(dacl),
                        head + len(dacl) + len(admins), 0, head)
            + dacl + admins + system)


Render = Callable[[dict], bytes]


class _Layout:
    def __init__(self) -> None:
        self.cells: list[tuple[object, int, Render]] = []  # (id, data size, render)

    def add(self, ident: object, size: int, render: Render) -> None:
        self.cells.append((ident, size, render))


def write_hive(root: Key, *, file_name: str, time: dt.datetime, sequence: tuple[int, int] = (7, 7),
               minor: int = 5, leaf: str = "lh") -> Written:
    """The hive file of `root` (its name is the root key's, e.g. 'ROOT' or a CMI-CreateHive
    name); `sequence` differing makes it dirty; `leaf` 'lh' or 'lf' picks the subkey lists."""
    lay = _Layout()
    keys: list[tuple[str, Key]] = []
    sd = security_descriptor()

    def visit(key: Key, path: str, parent: object) -> None:
        ident = ("nk", path)
        keys.append((path, key))
        name, comp = _name(key.name)
        lay.add(ident, S.NK.size + len(name), lambda o, k=key, p=path, par=parent, n=name,
                c=comp: _nk(k, p, par, n, c, o))
        if parent is None:
            lay.add("sk", S.SK.size + len(sd), lambda o: S.SK.pack(
                b"sk", 0, o["sk"], o["sk"], len(keys), len(sd)) + sd)
        if key.values:
            lay.add(("vl", path), 4 * len(key.values), lambda o, k=key, p=path: b"".join(
                struct.pack("<I", o[("vk", p, v.name)]) for v in k.values))
            for v in key.values:
                vname, vcomp = _name(v.name)
                lay.add(("vk", path, v.name), S.VK.size + len(vname),
                        lambda o, v=v, p=path, n=vname, c=vcomp: _vk(v, p, n, c, o))
                if len(v.data) > 4:
                    lay.add(("data", path, v.name), len(v.data), lambda o, v=v: v.data)
        subs = sorted(key.subkeys, key=lambda k: k.name.upper())
        key.subkeys = subs
        if subs:
            lay.add(("sl", path), S.LH.size + S.LH_ELEMENT.size * len(subs),
                    lambda o, p=path, ss=subs: _leaf(leaf, p, ss, o))
        for sub in subs:
            visit(sub, f"{path}\\{sub.name}" if path else sub.name, ident)

    visit(root, "", None)
    offsets, bins = _place(lay)
    return _render(lay, offsets, bins, root, file_name, time, sequence, minor, keys)


def _nk(key: Key, path: str, parent: object, name: bytes, comp: bool, o: dict) -> bytes:
    flags = (S.KEY_COMP_NAME if comp else 0) | (
        S.KEY_HIVE_ENTRY | S.KEY_NO_DELETE if parent is None else 0)
    return S.NK.pack(
        b"nk", flags, filetime(key.time), 0, o[parent] if parent else 0,
        len(key.subkeys), 0, o[("sl", path)] if key.subkeys else S.NO_CELL, S.NO_CELL,
        len(key.values), o[("vl", path)] if key.values else S.NO_CELL, o["sk"], S.NO_CELL,
        max((len(k.name) * 2 for k in key.subkeys), default=0), 0,
        max((len(v.name) * 2 for v in key.values), default=0),
        max((len(v.data) for v in key.values), default=0), 0, len(name), 0) + name


def _vk(v: Value, path: str, name: bytes, comp: bool, o: dict) -> bytes:
    if len(v.data) <= 4:
        size, where = len(v.data) | S.DATA_INLINE, int.from_bytes(v.data.ljust(4, b"\0"), "little")
    else:
        size, where = len(v.data), o[("data", path, v.name)]
    return S.VK.pack(b"vk", len(name), size, where, v.type,
                     S.VALUE_COMP_NAME if comp else 0, 0) + name


def _leaf(kind: str, path: str, subs: list[Key], o: dict) -> bytes:
    out = S.LH.pack(kind.encode(), len(subs))
    for sub in subs:
        cell = o[("nk", f"{path}\\{sub.name}" if path else sub.name)]
        if kind == "lh":
            out += S.LH_ELEMENT.pack(cell, S.name_hash(sub.name))
        else:
            hint = sub.name.encode("latin-1", "replace")[:4]
            out += S.LF_ELEMENT.pack(cell, hint.ljust(4, b"\0"))
    return out


def _place(lay: _Layout) -> tuple[dict, list[tuple[int, int]]]:
    """Offsets (from the hive bins data) of every cell, and the bins as (offset, size)."""
    offsets: dict = {}
    bins: list[tuple[int, int]] = []
    start, used, size = 0, S.HBIN.size, S.HBIN_SIZE
    for ident, data_size, _ in lay.cells:
        cell = _align(4 + data_size)
        if used + cell > size:
            bins.append((start, size))
            start += size
            size = max(S.HBIN_SIZE, -(-(S.HBIN.size + cell) // S.HBIN_SIZE) * S.HBIN_SIZE)
            used = S.HBIN.size
        offsets[ident] = start + used
        used += cell
    bins.append((start, size))
    return offsets, bins


def _render(lay: _Layout, offsets: dict, bins: list[tuple[int, int]], root: Key, file_name: str,
            time: dt.datetime, sequence: tuple[int, int], minor: int,
            keys: list[tuple[str, Key]]) -> Written:
    total = bins[-1][0] + bins[-1][1]
    data = bytearray(total)
    for n, (start, size) in enumerate(bins):
        data[start:start + S.HBIN.size] = S.HBIN.pack(b"hbin", start, size, b"\0" * 8,
                                                      filetime(time) if n == 0 else 0, 0)
    ends = {start: start + size for start, size in bins}
    bin_of = sorted(ends)
    filled: dict[int, int] = {}  # bin start -> end of its last cell
    for ident, data_size, render in lay.cells:
        at = offsets[ident]
        body = render(offsets)
        assert len(body) == data_size, ident
        cell = _align(4 + data_size)
        data[at:at + cell] = struct.pack("<i", -cell) + body.ljust(cell - 4, b"\0")
        home = bin_of[bisect.bisect_right(bin_of, at) - 1]
        filled[home] = at + cell
    for start in bin_of:  # the rest of each bin is one free cell
        end, last = ends[start], filled.get(start, start + S.HBIN.size)
        if end > last:
            data[last:last + 4] = struct.pack("<i", end - last)
    head = _base_block(file_name, time, sequence, minor, S.FILE_TYPE_PRIMARY,
                       offsets[("nk", "")], total)
    base = S.BASE_BLOCK_SIZE
    return Written(head + bytes(data),
                   {path: base + offsets[("nk", path)] for path, _ in keys},
                   {(path, v.name): base + offsets[("vk", path, v.name)]
                    for path, key in keys for v in key.values},
                   [(base + start, size) for start, size in bins], root)


@dataclass
class LogEntry:
    """One new-format log entry (HvLE): the hive bins data size after it and the dirty pages
    (offset from the hive bins data, bytes) it writes; its sequence number comes from its place."""

    bins_size: int
    pages: list[tuple[int, bytes]]
    sequence: int | None = None  # None: the log's next number (set one to write a stale entry)
    flags: int = 0


def log_entry(sequence: int, entry: LogEntry) -> bytes:
    """An HvLE log entry: header, page references, pages, padded to 512 bytes; hash-1 is the
    Marvin32 of everything after the header, hash-2 of the first 32 bytes (seed 0x82EF4D887A4E55C5,
    hpforensics.evtx.marvin32, itself checked against published vectors)."""
    from hpforensics.evtx.marvin32 import marvin32

    body = b"".join(struct.pack("<II", off, len(page)) for off, page in entry.pages)
    body += b"".join(page for _, page in entry.pages)
    size = -(-(S.LOG_ENTRY.size + len(body)) // 512) * 512
    body = body.ljust(size - S.LOG_ENTRY.size, b"\0")
    head = S.LOG_ENTRY.pack(b"HvLE", size, entry.flags, sequence, entry.bins_size,
                            len(entry.pages), marvin32(body), 0)
    return head[:32] + struct.pack("<Q", marvin32(head[:32])) + body


def _base_block(file_name: str, time: dt.datetime, sequence: tuple[int, int], minor: int,
                kind: int, root: int, bins_size: int) -> bytes:
    """A base block (a primary file's, or a log's copy of it): the last 31 characters of the
    file name, the XOR-32 checksum."""
    head = bytearray(S.BASE_BLOCK_SIZE)
    S.BASE_BLOCK.pack_into(head, 0, b"regf", sequence[0], sequence[1], filetime(time), 1, minor,
                           kind, 1, root, bins_size, 1,
                           file_name[-31:].encode("utf-16-le").ljust(64, b"\0"))
    struct.pack_into("<I", head, S.CHECKSUM_AT, S.xor32(bytes(head)))
    return bytes(head)


def log_file(file_name: str, time: dt.datetime, sequence: int, entries: tuple[LogEntry, ...] = (),
             *, root: int = 0x20, bins_size: int = 0) -> bytes:
    """A new-format transaction log (.LOG1/.LOG2), file type 6: the first sector of the base
    block (its sequence numbers = the first entry's), then `entries` numbered on from
    `sequence`; none: the base block only (what a hive whose changes were all flushed leaves
    beside it, 4096 bytes)."""
    head = _base_block(file_name, time, (sequence, sequence), 5, S.FILE_TYPE_LOG, root,
                       bins_size)
    if not entries:
        return head
    out = head[:512]
    for n, entry in enumerate(entries):
        out += log_entry(sequence + n if entry.sequence is None else entry.sequence, entry)
    return out


def old_log_file(file_name: str, time: dt.datetime, sequence: int, bins_size: int,
                 pages: list[tuple[int, bytes]], *, root: int = 0x20) -> bytes:
    """An old-format transaction log (Windows XP-8), file type 1: the base block's first sector,
    the dirty vector ('DIRT', one bit per 512-byte page of the hive bins data, padded to a
    sector), then the dirty pages (offset, 512 bytes each) in bit order."""
    bitmap = bytearray(bins_size // 512 // 8)
    for offset, page in pages:
        assert offset % 512 == 0 and len(page) == 512
        bitmap[offset // 512 // 8] |= 1 << (offset // 512 % 8)
    vector = b"DIRT" + bytes(bitmap)
    vector = vector.ljust(-(-len(vector) // 512) * 512, b"\0")
    return (_base_block(file_name, time, (sequence, sequence), 5, S.FILE_TYPE_OLD_LOG, root,
                        bins_size)[:512]
            + vector + b"".join(page for _, page in sorted(pages)))
