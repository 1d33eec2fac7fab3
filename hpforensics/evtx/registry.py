"""Hotpatch enrolment evidence from the registry: Velociraptor result rows and `.reg` exports.

Two forms reach the timeline:
- the rows of `contrib/velociraptor/Windows.Hotpatch.Collect.yaml`, which a collection stores as
  JSON Lines in `results/Windows.Hotpatch.Collect%2F<Source>.json` (older collections and server
  exports: `Windows.Hotpatch.Collect/<Source>.json`). Source `Enrolment` gives one row per key or
  value (Path, Name, IsDir, Type, Value, Mtime); source `HotpatchKeys` one row per Hotpatch.* key
  with its values as columns (read_reg_key).
- a `reg export` file ("Windows Registry Editor Version 5.00", UTF-16LE with a BOM; REGEDIT4 in
  ANSI too). It holds no times: its records have none.
- a hive file (SOFTWARE, SYSTEM from a triage collection): read by hive.py into the same records.

Each key or value becomes a RawRecord (provider and channel "Registry", event ID 0, record ID
the line number, time the key's last write, no Computer: the collection's name is the device)
with data {path (the key), name (the value; '' for the key itself), type, value}; normalise.py
decides what it says about enrolment (`enrolment()` below).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any, Iterator
from urllib.parse import unquote

from hpforensics.evtx.hive_file import Problems
from hpforensics.evtx.records import RawRecord, ReadStats, parse_time, text_value

log = logging.getLogger(__name__)

PROVIDER = CHANNEL = "Registry"
ARTIFACT = "windows.hotpatch.collect"
SOURCES = ("enrolment", "hotpatchkeys")
_HIVES = {"HKEY_LOCAL_MACHINE": "HKLM", "HKEY_CURRENT_USER": "HKCU", "HKEY_USERS": "HKU"}
# The read_reg_key row's own columns, not registry values
_ROW_COLUMNS = frozenset({"Path", "Mtime", "Key", "OSPath", "FullPath"})


def is_results_file(path: str) -> bool:
    """Whether a file or zip member is one of the artifact's registry result sets
    ('results/Windows.Hotpatch.Collect%2FEnrolment.json', '.../Windows.Hotpatch.Collect/
    HotpatchKeys.json', JSON Lines either way)."""
    parts = unquote(path.replace("\\", "/")).lower().rsplit("/", 2)
    if len(parts) < 2:
        return False
    stem, dot, ext = parts[-1].rpartition(".")
    return bool(dot) and ext in ("json", "jsonl") and stem in SOURCES and parts[-2] == ARTIFACT


def read_exported(path: str, stats: ReadStats, head: bytes) -> Iterator[RawRecord]:
    """The records of a `.reg` export or a Velociraptor result set (`head`: the file's first
    bytes); a bad line is one warning naming the first bad line (and how many more), the good
    lines are kept. Hive files are hive.py's (hpforensics.evtx.formats.registry tells them)."""
    text = head.lstrip(b"\xef\xbb\xbf")
    if (path.lower().endswith(".reg") or head.startswith((b"\xff\xfe", b"\xfe\xff"))
            or text.startswith((b"Windows Registry", b"REGEDIT4"))):
        return _read_reg(path, stats, head)
    return _read_results(path, stats)


def _bad_lines() -> Problems:
    """The first bad line of a file and how many followed (one warning per file)."""
    return Problems(more="{n} more bad lines", kept="the other rows were kept")


# -- Velociraptor result rows (JSON Lines) ------------------------------------------------------

def _read_results(path: str, stats: ReadStats) -> Iterator[RawRecord]:
    # lazy: only this path uses it (kept off this module's import cost)
    from hpforensics.evidence import open_evidence

    bad = _bad_lines()
    with open_evidence(path) as raw:
        for n, line in enumerate(raw, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line.decode("utf-8-sig"))
            except (UnicodeDecodeError, ValueError) as exc:
                bad.at_line(n, f"not a JSON row ({exc})")
                continue
            if not isinstance(row, dict) or not isinstance(row.get("Path"), str):
                bad.at_line(n, "not a registry row (no Path)")
                continue
            for rec in _row_records(row, n):
                stats.records += 1
                yield rec
    bad.warn(stats)


def _row_records(row: dict[str, Any], n: int) -> Iterator[RawRecord]:
    time = _time(row.get("Mtime"))
    path = _clean_path(row["Path"])
    if "IsDir" in row:  # an Enrolment row: one key or one value
        name = text_value(row.get("Name"))
        if row.get("IsDir"):
            yield record(n, time, path, "", "key", "")
            return
        key, _, last = path.rpartition("\\")
        if last.lower() == name.lower() and key:  # OSPath.Path names the value too
            path = key
        yield record(n, time, path, name, text_value(row.get("Type")), _value(row.get("Value")))
        return
    # a HotpatchKeys (read_reg_key) row: the key, then each value column
    yield record(n, time, path, "", "key", "")
    for name, value in row.items():
        if name not in _ROW_COLUMNS and not name.startswith("_"):
            yield record(n, time, path, name, "", _value(value))


def record(n: int, time: dt.datetime | None, path: str, name: str, kind: str,
           value: str) -> RawRecord:
    """One key (name '') or value as a record: provider and channel Registry, record ID `n`."""
    data = {"path": path, "name": name, "type": kind, "value": value}
    return RawRecord(PROVIDER, 0, n, time, CHANNEL, "", data, _describe(data))


def _clean_path(path: str) -> str:
    return path.replace("/", "\\").strip("\\")


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    return parse_time(text_value(value))


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(text_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return text_value(value)


def _describe(data: dict[str, str]) -> str:
    hive, sep, rest = data["path"].partition("\\")
    where = f"{_HIVES.get(hive.upper(), hive)}{sep}{rest}"
    if not data["name"]:
        return f"key {where}"
    kind = f" ({data['type']})" if data["type"] else ""
    return f"{where}\\{data['name']} = {data['value']}{kind}"


# -- reg export ----------------------------------------------------------------------------------

_KEY = re.compile(r"^\[(-?)([^\]]+)\]$")
_VALUE = re.compile(r'^(@|"(?:[^"\\]|\\.)*")=(.*)$')
_HEX = re.compile(r"^hex(?:\(([0-9a-fA-F]+)\))?:([0-9a-fA-F,\s]*)$")


def _read_reg(path: str, stats: ReadStats, head: bytes) -> Iterator[RawRecord]:
    # lazy: only this path uses it (kept off this module's import cost)
    from hpforensics.evidence import open_evidence

    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    bad = _bad_lines()
    key = ""
    with open_evidence(path) as raw:
        try:
            text = raw.read().decode(encoding)
        except UnicodeDecodeError as exc:
            stats.warnings.append(f"{stats.source} at offset {exc.start:#x}: not {encoding} "
                                  f"text ({exc.reason})")
            return
    for n, line in _logical_lines(text):
        if n == 1 and not line.startswith(("Windows Registry Editor", "REGEDIT4")):
            bad.at_line(n, "not a registry export (no 'Windows Registry Editor' line)")
        if n == 1 or not line or line.startswith(";"):
            continue  # the editor's version line, blanks, comments
        m = _KEY.match(line)
        if m:
            key = "" if m.group(1) else _clean_path(m.group(2))  # [-KEY] deletes it
            if key:
                stats.records += 1
                yield record(n, None, key, "", "key", "")
            continue
        m = _VALUE.match(line)
        if not m or not key:
            bad.at_line(n, "not a key or value line" if key or not m else "value outside a key")
            continue
        name = "" if m.group(1) == "@" else _unescape(m.group(1)[1:-1])
        try:
            kind, value = _reg_data(m.group(2).strip())
        except ValueError as exc:
            bad.at_line(n, str(exc))
            continue
        if kind:  # "name"=- deletes the value
            stats.records += 1
            yield record(n, None, key, name, kind, value)
    bad.warn(stats)


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) with hex data continued over lines by a trailing '\\'."""
    pending, start = "", 0
    # only CR LF / LF end a line: splitlines() would also split at U+2028 etc. inside a value
    for n, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        line = line.strip()
        if pending:
            pending += line
        else:
            pending, start = line, n
        if pending.endswith("\\") and "=hex" in pending:
            pending = pending[:-1]
            continue
        yield start, pending
        pending = ""
    if pending:
        yield start, pending


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _reg_data(text: str) -> tuple[str, str]:
    """(type, value) of the text right of '='; ('', '') for a deletion."""
    if text == "-":
        return "", ""
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return "REG_SZ", _unescape(text[1:-1])
    if text.lower().startswith("dword:"):
        digits = text[6:]
        if not re.fullmatch(r"[0-9a-fA-F]{1,8}", digits):
            raise ValueError(f"bad dword {digits!r}")
        return "REG_DWORD", str(int(digits, 16))
    m = _HEX.match(text)
    if not m:
        raise ValueError(f"unknown value data {text[:40]!r}")
    raw = bytes(int(b, 16) for b in re.split(r"[,\s]+", m.group(2)) if b)
    kind = int(m.group(1), 16) if m.group(1) else 3
    if kind == 4 and len(raw) == 4:
        return "REG_DWORD", str(int.from_bytes(raw, "little"))
    if kind == 11 and len(raw) == 8:
        return "REG_QWORD", str(int.from_bytes(raw, "little"))
    if kind in (1, 2, 7):
        strings = raw.decode("utf-16-le", "replace").rstrip("\0").split("\0")
        return {1: "REG_SZ", 2: "REG_EXPAND_SZ", 7: "REG_MULTI_SZ"}[kind], "; ".join(strings)
    return ("REG_BINARY" if kind == 3 else f"REG_TYPE_{kind}"), raw.hex()


# -- what a record says ------------------------------------------------------------------------

ENROLLED, NOT_ENROLLED = "enrolled", "not-enrolled"
# Hotpatch eligibility on Arm64 (docs/calendar.md, "Facts that change how a device is judged")
CHPE_DISABLED, CHPE_ENABLED = "chpe-disabled", "chpe-enabled"
ARM64, X64 = "arm64", "x64"
HOTPATCH_KEY = "hotpatch."  # a key under ...\\DynamicInstalled named Hotpatch.<arch>


def _rebootless(value: str) -> str | None:
    return {1: ENROLLED, 0: NOT_ENROLLED}.get(_int(value))  # type: ignore[arg-type]


def _table_size(value: str) -> str | None:
    number = _int(value)
    return ENROLLED if number is not None and number > 0 else None


def _chpe_off(value: str) -> str | None:
    """HotPatchRestrictions / DisableCHPE = 1 turns CHPE off (what Arm64 hotpatching needs);
    0 leaves it on."""
    return {1: CHPE_DISABLED, 0: CHPE_ENABLED}.get(_int(value))  # type: ignore[arg-type]


def _architecture(value: str) -> str | None:
    return {"arm64": ARM64, "amd64": X64}.get(value.strip().lower())


# The values that say something about enrolment or eligibility (lower case): the key each
# counts in (the end of its path: a PolicyManager export has look-alikes elsewhere) and what
# its data says. hive.py reads just these from a hive.
DEVICE_VALUES = {
    "allowrebootlessupdates": ("\\update", _rebootless),
    "hotpatchtablesize": ("\\memory management", _table_size),
    "hotpatchrestrictions": ("\\memory management", _chpe_off),
    "disablechpe": ("\\device\\system", _chpe_off),  # Policy CSP System/DisableCHPE
    "processor_architecture": ("\\session manager\\environment", _architecture),
}


def device_values(key_path: str) -> frozenset[str]:
    """The names (lower case) of the DEVICE_VALUES that count in the key at `key_path`."""
    path = key_path.lower()
    return frozenset(name for name, (key, _) in DEVICE_VALUES.items() if path.endswith(key))


def evidence(data: dict[str, str]) -> str | None:
    """What a registry record says of the device:
    ENROLLED for AllowRebootlessUpdates = 1, a Hotpatch.* key under DynamicInstalled (the
    server's "Hotpatch Enrollment Package") or HotPatchTableSize > 0; NOT_ENROLLED for
    AllowRebootlessUpdates = 0 (hotpatch-internals.md, Event logs); CHPE_DISABLED /
    CHPE_ENABLED for HotPatchRestrictions (Memory Management) or the DisableCHPE policy
    (PolicyManager\\current\\device\\System) = 1 / 0; ARM64 / X64 for PROCESSOR_ARCHITECTURE
    (Session Manager\\Environment); None for anything else.
    AllowRebootlessUpdates counts in a key named Update (PolicyManager\\current\\device\\Update),
    HotPatchTableSize in Session Manager\\Memory Management."""
    name = data.get("name", "").lower()
    path = data.get("path", "").lower()
    if not name:
        parent, _, last = path.rpartition("\\")
        return ENROLLED if last.startswith(HOTPATCH_KEY) and parent.endswith(
            "\\dynamicinstalled") else None
    key, says = DEVICE_VALUES.get(name, ("", None))
    if says is None or not path.endswith(key):
        return None
    return says(data.get("value", ""))


def _int(text: str) -> int | None:
    text = text.strip().lower()
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        return None


# A quality-update pause: the values holding its start and end, and the keys they count in
# (lower case): the Settings app's UX\\Settings and Windows Update's effective
# UpdatePolicy\\PolicyState (docs/timeline.md, "Paused"). hive.py reads just these.
PAUSE_VALUES = {"pausequalityupdatesstarttime": "from", "pausequalityupdatesendtime": "until"}
PAUSE_KEYS = ("\\windowsupdate\\ux\\settings", "\\windowsupdate\\updatepolicy\\policystate")


def pause_values(key_path: str) -> frozenset[str]:
    """The pause value names (lower case) that count in the key at `key_path`."""
    return frozenset(PAUSE_VALUES) if key_path.lower().endswith(PAUSE_KEYS) else frozenset()


def quality_pause(data: dict[str, str]) -> tuple[str, dt.datetime] | None:
    """('from' | 'until', time) for a PauseQualityUpdatesStartTime / EndTime value in one of
    PAUSE_KEYS ('2025-09-30T08:00:00Z'); None for anything else."""
    which = PAUSE_VALUES.get(data.get("name", "").lower())
    if which is None or not pause_values(data.get("path", "")):
        return None
    when = parse_time(data.get("value", "").strip())
    return (which, when) if when is not None else None
