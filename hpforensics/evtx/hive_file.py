"""A hive file's structure, checked before it is read: the base block (signature, XOR-32
checksum, sequence numbers), every hive bin header, the end of the file; a damaged base block
rebuilt from the first bin. Format: Maxim Suhanov, "Windows registry file format specification"
(github.com/msuhanov/regf), "Format of primary files" and "Dirty state of a hive".
"""
from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from typing import Any

from hpforensics.evtx.records import ReadStats

log = logging.getLogger(__name__)

SIGNATURE = b"regf"
BASE = 4096  # the base block; cell offsets count from its end
HEAD = struct.Struct("<4sIIqIIIIIII")  # the base block's fields up to the clustering factor
_BIN = struct.Struct("<4sII")  # a hive bin header's signature, offset and size
CHECKSUM_AT = 508  # the base block's XOR-32 checksum, of the bytes before it
_KEY_HIVE_ENTRY = 0x0004


@dataclass(frozen=True)
class BaseBlock:
    """A base block's fields (HEAD: signature, sequence numbers, ...) and its checksum as stored
    and as its bytes give it; a primary file's and a transaction log's alike."""

    fields: tuple[Any, ...]
    stored: int
    computed: int

    @property
    def signed(self) -> bool:
        return self.fields[0] == SIGNATURE

    @property
    def checksum_ok(self) -> bool:
        return self.stored == self.computed


def base_block(data: Any) -> BaseBlock:
    """The base block at the start of `data` (at least CHECKSUM_AT + 4 bytes)."""
    return BaseBlock(HEAD.unpack_from(data), struct.unpack_from("<I", data, CHECKSUM_AT)[0],
                     xor32(data[:CHECKSUM_AT]))


class Problems:
    """A file's problems, reported as one warning (the first, and how many more): a hive's by
    offset, a text file's (registry.py) by line. `more` words the count ({n}, plural {s});
    `kept` the end of the warning ('' for what a hive kept: its values, or nothing)."""

    def __init__(self, more: str = "{n} more problem{s}", kept: str = "") -> None:
        self.more, self.kept = more, kept
        self.found: list[tuple[str, str, str]] = []

    def add(self, offset: int, reason: str, source: str = "") -> None:
        """A problem at `offset` of the hive, or of `source` (a transaction log) when given."""
        self._add(f" at offset {offset:#x}", reason, source)

    def at_line(self, line: int, reason: str) -> None:
        """A problem on line `line` of the file."""
        self._add(f": line {line}", reason, "")

    def _add(self, where: str, reason: str, source: str) -> None:
        log.debug("problem in %s%s: %s", source, where, reason)
        self.found.append((where, reason, source))

    def warn(self, stats: ReadStats) -> None:
        if not self.found:
            return
        where, reason, source = self.found[0]
        n = len(self.found) - 1
        more = f" ({self.more.format(n=n, s='s' if n > 1 else '')})" if n else ""
        kept = self.kept or ("the values that could be read were kept" if stats.records
                             else "nothing was read")
        stats.warnings.append(f"{source or stats.source}{where}: {reason}{more}; {kept}")


def check(view: Any, problems: Problems, not_replayed: str = "") -> bytes | None:
    """The base block to read the hive with (rebuilt when damaged), after checking it and the
    hive bins; None when nothing can be read. `not_replayed`: why a dirty hive's logs (found
    beside it) were not replayed (hive_log.py)."""
    size = len(view)
    if size < BASE + _BIN.size:
        problems.add(size, f"the file ends at {size:#x}, before the first hive bin: "
                           "not enough of a hive to read")
        return None
    head = bytes(view[:BASE])
    block = base_block(head)
    (sig, seq1, seq2, _, _, minor, _, _, root, length, _) = block.fields
    ok = block.signed
    if not ok:
        problems.add(0, f"no regf signature ({sig!r}): base block damaged, rebuilt from the "
                        "first hive bin")
    else:
        if not block.checksum_ok:
            problems.add(CHECKSUM_AT, f"base block checksum {block.stored:#010x} does not match "
                                      f"its contents ({block.computed:#010x}); read as is")
        if seq1 != seq2:
            why = f" ({not_replayed})" if not_replayed else ""
            problems.add(4, f"dirty hive (sequence numbers {seq1} and {seq2} differ): its "
                            f"transaction logs (.LOG1/.LOG2) were not replayed{why}, changes not "
                            "yet written to the file are missing")
    if not ok or length == 0 or length % 4096:
        length = (size - BASE) // 4096 * 4096
    _check_bins(view, size, length, problems)
    if ok and root and _root_ok(view, root):
        return head
    found = _find_root(view, size)
    if found is None:
        problems.add(BASE, "no root key (a key node flagged KEY_HIVE_ENTRY) in the first bin")
        return None
    if ok:
        problems.add(0x24, f"root cell offset {root:#x} is not a key node; using {found:#x}")
    return HEAD.pack(SIGNATURE, 1, 1, 0, 1, minor if ok else 5, 0, 1, found, length, 1) + \
        bytes(BASE - HEAD.size)


def xor32(head: bytes | bytearray | memoryview) -> int:
    """The base block checksum: XOR of the first 508 bytes as 32-bit words."""
    value = 0
    for (word,) in struct.iter_unpack("<I", head[:CHECKSUM_AT]):
        value ^= word
    return {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(value, value)  # as Windows stores it


def _check_bins(view: Any, size: int, length: int, problems: Problems) -> None:
    """Walk the hive bin headers: each says where it is and how long it is (4 KiB multiples)."""
    at, end = BASE, min(BASE + length, size)
    while at < end:
        if size - at < _BIN.size:
            problems.add(at, f"the file ends at {size:#x} inside a hive bin header")
            return
        sig, where, step = _BIN.unpack_from(view, at)
        if sig != b"hbin" or step < 4096 or step % 4096:
            problems.add(at, f"not a hive bin header ({bytes(sig)!r}, size {step:#x}); "
                             "reading on 4 KiB further")
            step = 4096
        elif where != at - BASE:
            problems.add(at, f"hive bin says it is at {where + BASE:#x}")
        if at + step > size:
            problems.add(at, f"hive bin of {step:#x} bytes cut short: the file ends at "
                             f"{size:#x}")
            return
        at += step
    if BASE + length > size:
        problems.add(size, f"the file ends at {size:#x}, the base block declares "
                           f"{BASE + length:#x} bytes")


def _cell(view: Any, offset: int) -> bytes:
    """The first bytes of the cell at `offset` (from the hive bins data), b'' past the end."""
    at = BASE + offset
    return bytes(view[at + 4:at + 8]) if at + 8 <= len(view) else b""


def _root_ok(view: Any, root: int) -> bool:
    data = _cell(view, root)
    return data[:2] == b"nk" and bool(struct.unpack("<H", data[2:4])[0] & _KEY_HIVE_ENTRY)


def _find_root(view: Any, size: int) -> int | None:
    """The root key's offset: the first key node flagged KEY_HIVE_ENTRY in the first bin (where
    Windows writes it), found by walking that bin's cells."""
    at, end = BASE + _BIN.size, min(size, BASE + 4096 * 256)
    while at + 8 <= end:
        cell = abs(struct.unpack_from("<i", view, at)[0])
        if _root_ok(view, at - BASE):
            return at - BASE
        if cell < 8 or cell % 8:
            at = (at + 8) // 8 * 8  # not a cell boundary: step on
            continue
        at += cell
    return None


class Reader:
    """A read-only file view of the mapped hive whose base block may be a rebuilt one
    (dissect.regf reads the base block once, then cells by offset)."""

    def __init__(self, view: Any, head: bytes) -> None:
        self.view, self.head, self.pos = view, head, 0

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        self.pos = pos if whence == os.SEEK_SET else self.pos + pos if whence == os.SEEK_CUR \
            else len(self.view) + pos
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = len(self.view) if n is None or n < 0 else min(self.pos + n, len(self.view))
        if self.pos >= BASE:
            data = bytes(self.view[self.pos:end])
        else:
            data = self.head[self.pos:min(end, BASE)] + bytes(self.view[BASE:end])
        self.pos += len(data)
        return data
