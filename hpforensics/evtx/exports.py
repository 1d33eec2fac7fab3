"""Events that arrive as exports rather than .evtx: wevtutil XML, Get-WinEvent JSON, ETW .etl.

- `wevtutil qe <log> /f:xml` (or /f:RenderedXml) writes <Event> elements back to back with no
  root element: parsed incrementally with a pull parser fed a synthetic root, one event in
  memory at a time.
- `Get-WinEvent ... | Export-Clixml` (PowerShell's CLIXML) is read by the same pull parser,
  one <Obj> at a time, and mapped like the JSON export.
- `Get-WinEvent ... | ConvertTo-Json` writes one array (or one object) of EventLogRecord
  objects whose event data is positional (`Properties[i].Value`); JSON Lines work too. The array
  is read element by element with `raw_decode`, so a large export is never loaded whole.
- `.etl` (ETW trace) through dissect.etl, when it can read the file; otherwise a plain warning.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import xml.etree.ElementTree as ET
from typing import IO, Any, Iterator, cast

from hpforensics.evidence import open_evidence
from hpforensics.evtx.records import (RawRecord, ReadStats, add_positional, parse_time,
                                      raw_from_xml, text_value)
from hpforensics.evtx.etl_reader import read_etl as read_trace

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
_XML_DECL = re.compile(rb"^\s*(?:\xef\xbb\xbf)?\s*<\?xml[^>]*\?>")
_MS_DATE = re.compile(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/")

# Get-WinEvent exports carry event data by position; the names the templates give them, for
# the events whose fields we read by name (Windows Update Client System-log templates).
POSITIONAL_NAMES: dict[tuple[str, int], tuple[str, ...]] = {
    ("Microsoft-Windows-WindowsUpdateClient", 19): (
        "updateTitle", "updateGuid", "updateRevisionNumber", "serviceGuid"),
    ("Microsoft-Windows-WindowsUpdateClient", 20): (
        "errorCode", "updateTitle", "updateGuid", "updateRevisionNumber", "serviceGuid"),
    ("Microsoft-Windows-WindowsUpdateClient", 43): (
        "updateTitle", "updateGuid", "updateRevisionNumber"),
    ("Microsoft-Windows-WindowsUpdateClient", 44): (
        "updateTitle", "updateGuid", "updateRevisionNumber"),
    ("Microsoft-Windows-Kernel-General", 12): (
        "MajorVersion", "MinorVersion", "BuildVersion", "QfeVersion", "ServiceVersion",
        "BootMode", "StartTime"),
}


def read_xml(path: str, stats: ReadStats) -> Iterator[RawRecord]:
    """wevtutil XML (<Event> elements, no root) or PowerShell Export-Clixml (<Objs><Obj>...)."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    parser.feed(b"<hpforensics-events>")
    stack: list[ET.Element] = []
    first = True
    with open_evidence(path) as fh:
        while True:
            block = fh.read(_BLOCK)
            if first:
                block = _XML_DECL.sub(b"", block, count=1)
                first = False
            try:
                parser.feed(block) if block else parser.feed(b"</hpforensics-events>")
                # only start and end events were asked for: each carries its element
                events = cast("Iterator[tuple[str, ET.Element]]", parser.read_events())
                for kind, elem in events:
                    if kind == "start":
                        stack.append(elem)
                        continue
                    stack.pop()
                    rec = _record_of(elem, stack)
                    if rec is not None:
                        stats.records += 1
                        yield rec
                        stack[-1].remove(elem)  # keep memory flat
            except ET.ParseError as exc:
                stats.warnings.append(f"{stats.source}: XML not well formed ({exc}); "
                                      f"events before that point were kept")
                return
            if not block:
                return


def _record_of(elem: ET.Element, stack: list[ET.Element]) -> RawRecord | None:
    tag = _local(elem.tag)
    if tag == "Event" and len(stack) == 1:
        return raw_from_xml(elem)
    if tag == "Obj" and len(stack) == 2 and _local(stack[1].tag) == "Objs":
        return raw_from_powershell(clixml_object(elem))
    return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def clixml_object(obj: ET.Element) -> dict[str, Any]:
    """An EventLogRecord serialised by Export-Clixml (MS-PSRP CLIXML: <Obj><Props> of typed
    elements named by N, the event data in Properties as a <LST> of EventProperty objects)
    as the dict ConvertTo-Json would have given."""
    out: dict[str, Any] = {}
    for section in obj:
        if _local(section.tag) not in ("Props", "MS"):
            continue
        for prop in section:
            name = prop.get("N")
            if not name:
                continue
            if name == "Properties":
                items = [o for lst in prop if _local(lst.tag) in ("LST", "IE")
                         for o in lst if _local(o.tag) == "Obj"]
                out[name] = [{"Value": _clixml_value(item)} for item in items]
            elif _local(prop.tag) != "Nil":
                out[name] = prop.text or ""
    return out


def _clixml_value(item: ET.Element) -> str:
    """An EventProperty's Value: a typed element's text, or an object's ToString."""
    for props in item:
        if _local(props.tag) == "Props":
            for sub in props:
                if sub.get("N") == "Value":
                    return _clixml_value(sub) if _local(sub.tag) == "Obj" else (sub.text or "")
    tostring = next((s for s in item if _local(s.tag) == "ToString"), None)
    return (tostring.text or "") if tostring is not None else ""


def read_json(path: str, stats: ReadStats) -> Iterator[RawRecord]:
    with open_evidence(path) as raw:
        fh = _text(raw)
        try:
            for obj in _json_objects(fh):
                stats.records += 1
                rec = raw_from_powershell(obj)
                if rec is not None:
                    yield rec
        except ValueError as exc:
            stats.warnings.append(f"{stats.source}: JSON not well formed ({exc}); "
                                  f"events before that point were kept")


def _text(raw: IO[bytes]) -> IO[str]:
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace")


_SEPARATORS = re.compile(r"[\s,\[\]]*")


def _json_objects(fh: IO[str]) -> Iterator[Any]:
    """Objects of a JSON array, a single object, or JSON Lines, without reading it whole.
    A position moves through the buffer (slicing it per object would copy it per object)."""
    decoder = json.JSONDecoder()
    buf, pos, eof = "", 0, False
    while True:
        pos = _SEPARATORS.match(buf, pos).end()  # type: ignore[union-attr]
        if pos >= len(buf):
            if eof:
                return
            buf, pos = fh.read(_BLOCK), 0
            eof = not buf
            continue
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError:
            if eof:
                raise ValueError(f"cannot decode {buf[pos:pos + 60]!r}") from None
            more = fh.read(_BLOCK)
            eof = not more
            buf, pos = buf[pos:] + more, 0
            continue
        pos = end
        yield obj


def raw_from_powershell(obj: Any) -> RawRecord | None:
    """A Get-WinEvent EventLogRecord as serialised by ConvertTo-Json (PowerShell 5.1 or 7)."""
    if not isinstance(obj, dict) or "Id" not in obj:
        return None
    provider = text_value(obj.get("ProviderName"))
    eid = int(obj.get("Id") or 0)
    rec = RawRecord(
        provider=provider,
        event_id=eid,
        record_id=int(obj.get("RecordId") or 0),
        time=_ps_time(obj.get("TimeCreated")),
        channel=text_value(obj.get("LogName")),
        computer=text_value(obj.get("MachineName")),
        message=text_value(obj.get("Message")),
    )
    values = [p.get("Value") if isinstance(p, dict) else p for p in obj.get("Properties") or []]
    names = POSITIONAL_NAMES.get((provider, eid))
    if names:
        for name, value in zip(names, values):
            rec.data[name] = text_value(value)
    else:
        add_positional(rec.data, [text_value(v) for v in values])
    return rec


def _ps_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dict):  # PowerShell 5.1 with -Depth: {"value": "/Date(...)/", ...}
        value = value.get("value") or value.get("DateTime")
    text = text_value(value)
    m = _MS_DATE.search(text)
    if m:
        return dt.datetime.fromtimestamp(int(m.group(1)) / 1000, tz=dt.timezone.utc)
    return parse_time(text)


def read_etl(path: str, stats: ReadStats, *, relevant_only: bool = True) -> Iterator[RawRecord]:
    """ETW events of a trace file (hpforensics/evtx/etl_reader.py: dissect.etl for the
    buffers and records, the manifests it bundles for the event fields)."""

    return read_trace(path, stats, relevant_only=relevant_only)
