"""Hotpatch enrolment evidence read straight from registry hive files (SOFTWARE, SYSTEM).

A triage collection (KAPE's RegistryHives target, CyLR, a Velociraptor raw-file upload) copies
`C:\\Windows\\System32\\config\\SOFTWARE` and `SYSTEM` as they are on disk: regf primary files
(format: Maxim Suhanov's "Windows registry file format specification", github.com/msuhanov/regf;
the libyal libregf documentation describes the same). dissect.regf reads the cells; this module
reads only what the Velociraptor artifact collects (contrib/velociraptor/Windows.Hotpatch.
Collect.yaml, source Enrolment), whatever the file is called:

- `Microsoft\\PolicyManager\\current\\device\\Update\\AllowRebootlessUpdates`, and each
  `Update\\TargetingInfo\\DynamicInstalled\\Hotpatch.*` key with its values (SOFTWARE);
- `HotPatchTableSize` in `Control\\Session Manager\\Memory Management` of the control set that
  `Select\\Current` names (SYSTEM; CurrentControlSet exists only in a running system).

Each becomes the record registry.py makes of a Velociraptor row (paths written `HKLM\\SOFTWARE\\...`
and `HKLM\\SYSTEM\\CurrentControlSet\\...`, so `registry.enrolment()` applies unchanged), its time
the key's last write, its record ID the file offset of the value's (or key's) cell.

The file is checked before it is read: base block signature and XOR-32 checksum, sequence
numbers (differing: a dirty hive, whose transaction logs are not replayed here: dissect.regf
3.14 cannot), every hive bin's header, the end of the file. A damaged base block is rebuilt from
the first bin (the root key is the cell flagged KEY_HIVE_ENTRY); a damaged cell costs the keys
or values behind it. All problems of a file are one warning naming the first one's offset; every
value that could be read is kept. The file is mapped read-only.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import struct
from typing import Any, Iterator

from hpforensics.evtx.records import RawRecord, ReadStats
from hpforensics.evtx.registry import record

log = logging.getLogger(__name__)

SIGNATURE = b"regf"
HIVE_NAMES = frozenset({"software", "system"})
BASE = 4096  # the base block; cell offsets count from its end
_HEAD = struct.Struct("<4sIIqIIIIIII")  # the base block's fields up to the clustering factor
_BIN = struct.Struct("<4sII")  # a hive bin header's signature, offset and size
_CHECKSUM_AT = 508
_KEY_HIVE_ENTRY = 0x0004
_TYPES = {0: "REG_NONE", 1: "REG_SZ", 2: "REG_EXPAND_SZ", 3: "REG_BINARY", 4: "REG_DWORD",
          5: "REG_DWORD_BIG_ENDIAN", 6: "REG_LINK", 7: "REG_MULTI_SZ", 11: "REG_QWORD"}
UPDATE = ("Microsoft", "PolicyManager", "current", "device", "Update")
DYNAMIC = ("TargetingInfo", "DynamicInstalled")
MEMORY = ("Control", "Session Manager", "Memory Management")


def is_hive_path(parts: list[str] | tuple[str, ...]) -> bool:
    """Whether a path names a SOFTWARE or SYSTEM hive where Windows keeps them
    ('.../System32/config/SOFTWARE', any case): not SAM, SECURITY, NTUSER.DAT or the logs."""
    low = [p.lower() for p in parts[-3:]]
    return len(low) == 3 and low[2] in HIVE_NAMES and low[:2] == ["system32", "config"]


def is_hive(head: bytes) -> bool:
    """Whether a file's first bytes are a regf primary file (a .LOG1/.LOG2 is file type 1/6)."""
    return head[:4] == SIGNATURE and (len(head) < 32 or head[28:32] == b"\0\0\0\0")


class _Problems:
    """A file's problems, reported as one warning (the first, and how many more)."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def add(self, offset: int, reason: str) -> None:
        log.debug("hive problem at %#x: %s", offset, reason)
        self.found.append((offset, reason))

    def warn(self, stats: ReadStats) -> None:
        if not self.found:
            return
        offset, reason = self.found[0]
        more = f" ({len(self.found) - 1} more problems)" if len(self.found) > 1 else ""
        stats.warnings.append(f"{stats.source} at offset {offset:#x}: {reason}{more}; "
                              "the values that could be read were kept")


def read_hive(path: str, stats: ReadStats) -> Iterator[RawRecord]:
    """The enrolment records of one hive file (see the module docstring)."""
    from dissect.regf import RegistryHive

    from hpforensics.evidence import map_evidence

    problems = _Problems()
    view = map_evidence(path)
    try:
        head = _check(view, problems)
        if head is not None:
            try:
                hive = RegistryHive(_Reader(view, head))
            except Exception as exc:  # noqa: BLE001 - dissect trusts the file's offsets
                problems.add(BASE, f"the root key cannot be read ({_why(exc)})")
            else:
                for rec in _enrolment(hive, problems):
                    stats.records += 1
                    yield rec
    finally:
        if not isinstance(view, bytes):
            view.close()
        problems.warn(stats)


def _check(view: Any, problems: _Problems) -> bytes | None:
    """The base block to read the hive with (rebuilt when damaged), after checking it and the
    hive bins; None when nothing can be read."""
    size = len(view)
    if size < BASE + _BIN.size:
        problems.add(size, f"the file ends at {size:#x}, before the first hive bin: "
                           "not enough of a hive to read")
        return None
    head = bytes(view[:BASE])
    (sig, seq1, seq2, _, _, minor, _, _, root, length, _) = _HEAD.unpack_from(head)
    ok = sig == SIGNATURE
    if not ok:
        problems.add(0, f"no regf signature ({sig!r}): base block damaged, rebuilt from the "
                        "first hive bin")
    else:
        stored = struct.unpack_from("<I", head, _CHECKSUM_AT)[0]
        want = _xor32(head)
        if stored != want:
            problems.add(_CHECKSUM_AT, f"base block checksum {stored:#010x} does not match its "
                                       f"contents ({want:#010x}); read as is")
        if seq1 != seq2:
            problems.add(4, f"dirty hive (sequence numbers {seq1} and {seq2} differ): its "
                            "transaction logs (.LOG1/.LOG2) were not replayed, changes not yet "
                            "written to the file are missing")
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
    return _HEAD.pack(SIGNATURE, 1, 1, 0, 1, minor if ok else 5, 0, 1, found, length, 1) + \
        bytes(BASE - _HEAD.size)


def _xor32(head: bytes) -> int:
    value = 0
    for (word,) in struct.iter_unpack("<I", head[:_CHECKSUM_AT]):
        value ^= word
    return {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(value, value)  # as Windows stores it


def _check_bins(view: Any, size: int, length: int, problems: _Problems) -> None:
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


class _Reader:
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


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]


# -- what is read ---------------------------------------------------------------------------

def _enrolment(hive: Any, problems: _Problems) -> Iterator[RawRecord]:
    root = hive.root()
    update = _open(root, UPDATE, problems)
    if update is not None:
        where = "HKLM\\SOFTWARE\\" + "\\".join(UPDATE)
        yield from _values(hive, update, where, {"allowrebootlessupdates"}, problems)
        dynamic = _open(update, DYNAMIC, problems)
        if dynamic is not None:
            for offset, key in _subkeys(hive, dynamic, where, problems):
                if key.name.lower().startswith("hotpatch."):
                    path = "\\".join((where, *DYNAMIC, key.name))
                    yield record(BASE + offset, _time(key), path, "", "key", "")
                    yield from _values(hive, key, path, None, problems)
    found = _control_set(root, problems)
    if found is not None:
        control_set, chosen_by = found
        memory = _open(root, (control_set, *MEMORY), problems)
        if memory is not None:
            where = "HKLM\\SYSTEM\\CurrentControlSet\\" + "\\".join(MEMORY)
            yield from _values(hive, memory, where, {"hotpatchtablesize"}, problems,
                               note=f" [{control_set} = Select\\{chosen_by}]")


def _open(key: Any, parts: tuple[str, ...], problems: _Problems) -> Any | None:
    from dissect.regf.exceptions import RegistryKeyNotFoundError

    for part in parts:
        try:
            key = key.subkey(part)
        except RegistryKeyNotFoundError:
            return None  # absent: not this hive, or not set on this device
        except Exception as exc:  # noqa: BLE001 - damage under this key
            problems.add(_list_offset(key), f"cannot read the subkeys of {key.name!r} looking "
                                            f"for {part!r} ({_why(exc)})")
            return None
    return key


def _list_offset(key: Any) -> int:
    return BASE + int(key.cell.SubKeyLists[0])


def _control_set(root: Any, problems: _Problems) -> tuple[str, str] | None:
    """ControlSet00N from Select\\Current (else Default): what CurrentControlSet links to;
    and which value said so."""
    select = _open(root, ("Select",), problems)
    if select is None:
        return None
    for name in ("Current", "Default"):
        try:
            number = select.value(name).value
        except Exception:  # noqa: BLE001 - absent or unreadable: try the next
            continue
        if isinstance(number, int) and 0 < number < 1000:
            return f"ControlSet{number:03d}", name
    problems.add(BASE, "Select has no usable Current or Default value: the current control "
                       "set is unknown")
    return None


def _subkeys(hive: Any, key: Any, where: str, problems: _Problems) -> Iterator[tuple[int, Any]]:
    """(cell offset, key) of each subkey, from lh / lf / li lists and ri lists of lists."""
    from dissect.regf.regf import IndexRoot

    count = key.cell.SubKeyCounts[0]
    if not count:
        return
    lists = [int(key.cell.SubKeyLists[0])]
    seen: set[int] = set()
    while lists:
        offset = lists.pop(0)
        if offset in seen or len(seen) > 4096:
            continue
        seen.add(offset)
        try:
            cell = hive.cell(offset)
            entries = [int(getattr(e, "Cell", e)) for e in cell.cell.List]
        except Exception as exc:  # noqa: BLE001
            problems.add(BASE + offset, f"subkey list of {where}\\{key.name} unreadable "
                                        f"({_why(exc)})")
            continue
        if isinstance(cell, IndexRoot):
            lists.extend(entries)
            continue
        for entry in entries:
            try:
                yield entry, hive.cell(entry)
            except Exception as exc:  # noqa: BLE001
                problems.add(BASE + entry, f"a subkey of {where} unreadable ({_why(exc)})")


def _values(hive: Any, key: Any, path: str, names: set[str] | None, problems: _Problems,
            note: str = "") -> Iterator[RawRecord]:
    """The key's values (those named in `names`, lower case; all for None) as records."""
    from dissect.regf.c_regf import c_regf
    from dissect.regf.regf import KeyValue

    count = int(key.cell.ValueList.Count)
    if not count:
        return
    table = int(key.cell.ValueList.List)
    try:
        data = hive.cell_data(table)
        offsets = c_regf.uint32[min(count, len(data) // 4)](data)
    except Exception as exc:  # noqa: BLE001
        problems.add(BASE + table, f"value list of {path} unreadable ({_why(exc)})")
        return
    time = _time(key)
    for offset in offsets:
        try:
            value = KeyValue(hive, hive.cell_data(offset))
            if names is not None and value.name.lower() not in names:
                continue
            rec = record(BASE + offset, time, path, value.name, _TYPES.get(
                value.type, f"REG_TYPE_{value.type}"), _text(value.value))
        except Exception as exc:  # noqa: BLE001
            problems.add(BASE + offset, f"a value of {path} unreadable ({_why(exc)})")
            continue
        rec.message += note
        yield rec


def _time(key: Any) -> dt.datetime | None:
    try:
        return key.timestamp  # a damaged FILETIME gives no time rather than a wrong one
    except (ValueError, OverflowError, OSError):
        return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)
