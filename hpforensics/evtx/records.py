"""The parser-neutral record every reader yields, and how event data is flattened into it.

Readers differ in how they render the same BinXML: the Rust parser gives JSON with typed numbers
and booleans, python-evtx gives XML text, wevtutil XML and PowerShell exports give text or
positional values. Everything after the reader sees one shape: System fields plus a flat
`name -> text` map of EventData/UserData, with unnamed values called Data1, Data2, ...
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only named in annotations: the XML readers import it themselves
    import xml.etree.ElementTree as ET

_STRING_LIST = re.compile(r"<string>(.*?)</string>", re.DOTALL)

_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)


def filetime_datetime(value: int) -> dt.datetime:
    """FILETIME (100 ns since 1601, UTC) to an aware datetime, truncated to microseconds;
    OverflowError past year 9999 (each caller says what a damaged time becomes)."""
    return _FILETIME_EPOCH + dt.timedelta(microseconds=value // 10)


@dataclass(slots=True)
class RawRecord:
    provider: str
    event_id: int
    record_id: int
    time: dt.datetime | None  # UTC
    channel: str
    computer: str
    data: dict[str, str] = field(default_factory=dict)
    message: str = ""  # rendered message text, when the export carries one (PowerShell)


@dataclass
class ReadStats:
    """What one input gave: counts and the warnings an examiner must see."""

    source: str
    records: int = 0  # records the parser returned
    relevant: int = 0  # records that became normalised events
    expected_records: int | None = None  # from the chunk headers, when known
    warnings: list[str] = field(default_factory=list)
    device_hint: str = ""
    sha256: str = ""  # of the input file, when hashing was asked for
    size: int | None = None

    @property
    def partial(self) -> bool:
        return bool(self.warnings)


def text_value(value: Any) -> str:
    """One leaf value as text, the same whichever parser produced it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_time(value: str) -> dt.datetime | None:
    """ISO-ish SystemTime ('2017-07-12T17:16:28.214161Z', '2017-07-12 17:16:28.214161+00:00',
    seven fractional digits from wevtutil) as an aware UTC datetime."""
    if not value:
        return None
    # fast path: the Rust parser's '2017-07-12T17:16:28.2141616Z UTC' and SystemTime values
    if (len(value) >= 27 and value[10] == "T" and value[19] == "." and value[26].isdigit()
            and (value.endswith("Z UTC") or value.endswith("Z"))):
        try:  # an explicit +00:00 gives the timezone.utc singleton, as replace() would
            return dt.datetime.fromisoformat(value[:26] + "+00:00")
        except ValueError:
            pass
    # and whole seconds, '2025-02-01T07:18:00Z UTC' (what the rest would do, in one step)
    if value[19:] in ("Z UTC", "Z") and len(value) >= 20 and value[10] == "T":
        try:
            return dt.datetime.fromisoformat(value[:19] + "+00:00")
        except ValueError:
            pass
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4]
    text = text.replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, frac = text.partition(".")
    if dot:
        digits = re.match(r"\d*", frac).group(0)  # type: ignore[union-attr]
        rest = frac[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.astimezone(dt.timezone.utc)


def flatten_json_data(node: Any, out: dict[str, str], name: str = "") -> None:
    """Flatten the Rust parser's EventData/UserData JSON into `out`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "#attributes":
                continue
            if key == "Data" and isinstance(value, dict) and "#text" in value:
                add_positional(out, value["#text"])
            elif key == "#text":
                add_positional(out, value) if name in ("", "Data") else _put(out, name, value)
            else:
                flatten_json_data(value, out, key)
    elif isinstance(node, list):
        if name == "Data":
            add_positional(out, node)
        else:
            for item in node:
                flatten_json_data(item, out, name)
    elif name and name != "Binary":
        _put(out, name, node)


def add_positional(out: dict[str, str], values: Any) -> None:
    """Unnamed <Data> values become Data1, Data2, ... (python-evtx renders a list as
    <string> elements inside one text node: split those the same way)."""
    if not isinstance(values, list):
        text = text_value(values)
        listed = _STRING_LIST.findall(text) if "<string>" in text else None
        values = listed if listed is not None else ([text] if text else [])
    start = sum(1 for k in out if k.startswith("Data") and k[4:].isdigit())
    for i, value in enumerate(values, start + 1):
        out[f"Data{i}"] = text_value(value)


def _put(out: dict[str, str], name: str, value: Any) -> None:
    out[name if name not in out else _free_name(out, name)] = text_value(value)


def _free_name(out: dict[str, str], name: str) -> str:
    i = 2
    while f"{name}{i}" in out:
        i += 1
    return f"{name}{i}"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def raw_from_xml(event: ET.Element) -> RawRecord:
    """An <Event> element (python-evtx, wevtutil /f:xml or /f:RenderedXml) as a RawRecord."""
    rec = RawRecord("", 0, 0, None, "", "")
    for part in event:
        kind = _local(part.tag)
        if kind == "System":
            for item in part:
                _system_field(rec, _local(item.tag), item)
        elif kind == "EventData":
            for item in part:
                if _local(item.tag) != "Data":
                    continue
                name = item.get("Name")
                if name:
                    _put(rec.data, name, item.text or "")
                else:
                    add_positional(rec.data, item.text or "")
        elif kind == "UserData":
            for leaf in part.iter():
                if len(leaf) == 0 and leaf is not part:
                    _put(rec.data, _local(leaf.tag), (leaf.text or "").strip())
        elif kind == "RenderingInfo":
            for item in part:
                if _local(item.tag) == "Message":
                    rec.message = item.text or ""
    return rec


def _system_field(rec: RawRecord, name: str, item: ET.Element) -> None:
    if name == "Provider":
        rec.provider = item.get("Name") or item.get("EventSourceName") or ""
    elif name == "EventID":
        rec.event_id = _int(item.text)
    elif name == "EventRecordID":
        rec.record_id = _int(item.text)
    elif name == "TimeCreated":
        rec.time = parse_time(item.get("SystemTime") or "")
    elif name == "Channel":
        rec.channel = item.text or ""
    elif name == "Computer":
        rec.computer = item.text or ""


def _int(text: str | None) -> int:
    try:
        return int((text or "0").strip(), 0)
    except ValueError:
        return 0
