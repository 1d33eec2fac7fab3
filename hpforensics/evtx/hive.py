"""Hotpatch enrolment evidence read straight from registry hive files (SOFTWARE, SYSTEM).

A triage collection (KAPE's RegistryHives target, CyLR, a Velociraptor raw-file upload) copies
`C:\\Windows\\System32\\config\\SOFTWARE` and `SYSTEM` as they are on disk: regf primary files
(format: Maxim Suhanov's "Windows registry file format specification", github.com/msuhanov/regf;
the libyal libregf documentation describes the same). dissect.regf reads the cells; this module
reads only what the Velociraptor artifact collects (contrib/velociraptor/Windows.Hotpatch.
Collect.yaml, source Enrolment), whatever the file is called:

- `Microsoft\\PolicyManager\\current\\device\\Update\\AllowRebootlessUpdates`, and each
  `Update\\TargetingInfo\\DynamicInstalled\\Hotpatch.*` key with its values (SOFTWARE);
- `HotPatchTableSize` and `HotPatchRestrictions` in `Control\\Session Manager\\Memory
  Management` and `PROCESSOR_ARCHITECTURE` in `Control\\Session Manager\\Environment` of the
  control set that `Select\\Current` names (SYSTEM; CurrentControlSet exists only in a running
  system), and the `PolicyManager\\current\\device\\System\\DisableCHPE` policy (SOFTWARE): what
  Arm64 hotpatch eligibility turns on.

Each becomes the record registry.py makes of a Velociraptor row (paths written `HKLM\\SOFTWARE\\...`
and `HKLM\\SYSTEM\\CurrentControlSet\\...`, so `registry.evidence()` applies unchanged), its time
the key's last write, its record ID the file offset of the value's (or key's) cell.

The file is checked before it is read (hive_file.py): base block signature and XOR-32 checksum,
sequence numbers (differing: a dirty hive, whose transaction logs beside it are replayed first
into a copy in memory by hive_log.py, as dissect.regf 3.14 cannot; the records then say how many
log entries were applied), every hive bin's header, the end of the file. A damaged base block is
rebuilt from the first bin (the root key is the cell flagged KEY_HIVE_ENTRY); a damaged cell
costs the keys or values behind it. All problems of a file are one warning naming the first
one's offset; every value that could be read is kept. The file is mapped read-only.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any, Iterator

from hpforensics.evtx.hive_file import BASE, SIGNATURE, Problems, Reader, check
from hpforensics.evtx.hive_log import is_dirty, logs_beside, replay
from hpforensics.evtx.records import RawRecord, ReadStats
from hpforensics.evtx.registry import HOTPATCH_KEY, device_values, pause_values, record
from hpforensics.evidence import map_evidence

log = logging.getLogger(__name__)

HIVE_NAMES = frozenset({"software", "system"})
_TYPES = {0: "REG_NONE", 1: "REG_SZ", 2: "REG_EXPAND_SZ", 3: "REG_BINARY", 4: "REG_DWORD",
          5: "REG_DWORD_BIG_ENDIAN", 6: "REG_LINK", 7: "REG_MULTI_SZ", 11: "REG_QWORD"}
UPDATE = ("Microsoft", "PolicyManager", "current", "device", "Update")
DYNAMIC = ("TargetingInfo", "DynamicInstalled")
MEMORY = ("Control", "Session Manager", "Memory Management")
PAUSES = (("Microsoft", "WindowsUpdate", "UX", "Settings"),
          ("Microsoft", "WindowsUpdate", "UpdatePolicy", "PolicyState"))
ENVIRONMENT = ("Control", "Session Manager", "Environment")
SYSTEM_POLICY = ("Microsoft", "PolicyManager", "current", "device", "System")


def is_hive_path(parts: list[str] | tuple[str, ...]) -> bool:
    """Whether a path names a SOFTWARE or SYSTEM hive where Windows keeps them
    ('.../System32/config/SOFTWARE', any case): not SAM, SECURITY, NTUSER.DAT or the logs."""
    low = [p.lower() for p in parts[-3:]]
    return len(low) == 3 and low[2] in HIVE_NAMES and low[:2] == ["system32", "config"]


def is_hive(head: bytes) -> bool:
    """Whether a file's first bytes are a regf primary file (a .LOG1/.LOG2 is file type 1/6)."""
    return head[:4] == SIGNATURE and (len(head) < 32 or head[28:32] == b"\0\0\0\0")


def read_hive(path: str, stats: ReadStats) -> Iterator[RawRecord]:
    """The enrolment records of one hive file (see the module docstring)."""
    # lazy: dissect only for the inputs that need it
    from dissect.regf import RegistryHive


    problems = Problems()
    mapped = map_evidence(path)
    try:
        view, not_replayed, note = _replay(path, mapped, stats.source, problems)
        head = check(view, problems, not_replayed)
        if head is not None:
            try:
                hive = RegistryHive(Reader(view, head))
            except Exception as exc:  # noqa: BLE001 - dissect trusts the file's offsets
                problems.add(BASE, f"the root key cannot be read ({_why(exc)})")
            else:
                for rec in _enrolment(hive, problems):
                    stats.records += 1
                    if note:
                        rec.message += f" [{note}]"
                    yield rec
    finally:
        if not isinstance(mapped, bytes):
            mapped.close()
        problems.warn(stats)


def _replay(path: str, mapped: Any, source: str, problems: Problems) -> tuple[Any, str, str]:
    """(what to read: the file, or the image its logs recovered; why logs beside a dirty hive
    were not replayed; the note for its records, '2 log entries applied from SOFTWARE.LOG1')."""

    paths = logs_beside(path) if is_dirty(mapped) else []
    if not paths:
        return mapped, "", ""
    logs: list[tuple[str, Any]] = []
    try:
        for log_path in paths:
            try:
                logs.append((os.path.basename(log_path), map_evidence(log_path)))
            except OSError as exc:
                log.debug("log %s unreadable: %s", log_path, exc)
        result = replay(mapped, logs)
    finally:
        for _, data in logs:
            if not isinstance(data, bytes):
                data.close()
    hive_name = os.path.basename(path)
    if result.problem:
        name, offset, reason = result.problem
        problems.add(offset, reason, source + name[len(hive_name):])
    if result.image is None:
        return mapped, result.why, ""
    log.info("%s: %s", source, result.note())
    return result.image, "", result.note()


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]


# -- what is read ---------------------------------------------------------------------------

def _enrolment(hive: Any, problems: Problems) -> Iterator[RawRecord]:
    root = hive.root()
    update = _open(root, UPDATE, problems)
    if update is not None:
        where = "HKLM\\SOFTWARE\\" + "\\".join(UPDATE)
        yield from _values(hive, update, where, device_values(where), problems)
        dynamic = _open(update, DYNAMIC, problems)
        if dynamic is not None:
            for offset, key in _subkeys(hive, dynamic, "\\".join((where, *DYNAMIC)), problems):
                if key.name.lower().startswith(HOTPATCH_KEY):
                    path = "\\".join((where, *DYNAMIC, key.name))
                    yield record(BASE + offset, _time(key), path, "", "key", "")
                    yield from _values(hive, key, path, None, problems)
    for parts in PAUSES:  # a quality-update pause (registry.PAUSE_KEYS)
        key = _open(root, parts, problems)
        if key is not None:
            where = "HKLM\\SOFTWARE\\" + "\\".join(parts)
            yield from _values(hive, key, where, pause_values(where), problems)
    policy = _open(root, SYSTEM_POLICY, problems)  # the DisableCHPE policy (Arm64)
    if policy is not None:
        where = "HKLM\\SOFTWARE\\" + "\\".join(SYSTEM_POLICY)
        yield from _values(hive, policy, where, device_values(where), problems)
    found = _control_set(root, problems)
    if found is not None:
        control_set, chosen_by = found
        for sub in (MEMORY, ENVIRONMENT):
            key = _open(root, (control_set, *sub), problems)
            if key is not None:
                where = "HKLM\\SYSTEM\\CurrentControlSet\\" + "\\".join(sub)
                yield from _values(hive, key, where, device_values(where), problems,
                                   note=f" [{control_set} = Select\\{chosen_by}]")


def _open(key: Any, parts: tuple[str, ...], problems: Problems) -> Any | None:
    # lazy: dissect only for the inputs that need it
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


def _control_set(root: Any, problems: Problems) -> tuple[str, str] | None:
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
            log.debug("current control set: ControlSet%03d (Select\\%s)", number, name)
            return f"ControlSet{number:03d}", name
    problems.add(BASE, "Select has no usable Current or Default value: the current control "
                       "set is unknown")
    return None


def _subkeys(hive: Any, key: Any, where: str, problems: Problems) -> Iterator[tuple[int, Any]]:
    """(cell offset, key) of each subkey, from lh / lf / li lists and ri lists of lists."""
    # lazy: dissect only for the inputs that need it
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
            problems.add(BASE + offset, f"subkey list of {where} unreadable ({_why(exc)})")
            continue
        if isinstance(cell, IndexRoot):
            lists.extend(entries)
            continue
        for entry in entries:
            try:
                yield entry, hive.cell(entry)
            except Exception as exc:  # noqa: BLE001
                problems.add(BASE + entry, f"a subkey of {where} unreadable ({_why(exc)})")


def _values(hive: Any, key: Any, path: str, names: frozenset[str] | None,
            problems: Problems, note: str = "") -> Iterator[RawRecord]:
    """The key's values (those named in `names`, lower case; all for None) as records."""
    # lazy: dissect only for the inputs that need it
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
