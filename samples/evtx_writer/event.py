"""An event as the writer takes it, and the template shape + substitution values it becomes.

The shape follows what Windows writes (compare any System.evtx): manifest-based providers get
Version/Opcode/Correlation/Execution and a GUID-typed Provider Guid; legacy ("classic") sources
such as EventLog or USER32 get the short System element, EventID Qualifiers, unnamed Data and a
Binary element. Every variable part of System and every Data value is a typed substitution, so
events of one provider with the same fields share one template per chunk, as on Windows.
"""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

from .values import VT, Value, coerce, filetime, guid, hex64, sid, u8, u16, u32, u64

EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"

# Shape nodes are plain tuples so a whole template shape is hashable and cheap to compare:
#   ("E", name, ((attr_name, node), ...), (child, ...))   element
#   ("T", text)                                           literal text
#   ("S", index, vtype)                                   substitution (optional token 0x0e)
Node = tuple


@dataclass(frozen=True)
class UserData:
    """A <UserData> payload: one element in its own namespace with one child per field."""

    element: str
    namespace: str
    fields: Mapping[str, Any]


@dataclass
class Event:
    """One event record. `data` is a dict (named Data) or a list (unnamed Data, classic sources).

    `provider_guid` given as a UUID or bare GUID string is stored GUID-typed (rendered
    "945A8954-..." by the evtx crate); a string in braces is stored as literal text, as
    Windows does for sources like Service Control Manager.
    """

    provider: str
    event_id: int
    time: _dt.datetime
    computer: str
    channel: str
    provider_guid: uuid.UUID | str | None = None
    data: Mapping[str, Any] | Sequence[Any] | None = None
    user_data: UserData | None = None
    binary: bytes | None = None
    version: int = 0
    level: int = 4
    task: int = 0
    opcode: int = 0
    keywords: int = 0x8000000000000000
    qualifiers: int | None = None
    event_source_name: str | None = None
    classic: bool = False
    process_id: int = 0
    thread_id: int = 0
    user_id: str | None = None
    activity_id: uuid.UUID | str | None = None
    extra: dict = field(default_factory=dict)  # free for callers (not written)


class _ShapeBuilder:
    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[Value] = []

    def sub(self, value: Value) -> Node:
        self.values.append(value)
        return ("S", len(self.values) - 1, value.vtype)


def _el(name: str, attrs: tuple = (), children: tuple = ()) -> Node:
    return ("E", name, attrs, children)


def build(event: Event, record_id: int) -> tuple[Node, list[Value]]:
    """The template shape of `event` and its substitution values, in index order."""
    b = _ShapeBuilder()
    ev = event
    prov_attrs: list = [("Name", ("T", ev.provider))]
    if ev.provider_guid is not None:
        g = ev.provider_guid
        if isinstance(g, str) and g.startswith("{"):
            prov_attrs.append(("Guid", ("T", g)))
        else:
            prov_attrs.append(("Guid", b.sub(guid(g))))
    if ev.event_source_name is not None:
        prov_attrs.append(("EventSourceName", ("T", ev.event_source_name)))
    system: list[Node] = [_el("Provider", tuple(prov_attrs))]
    eid_attrs = () if ev.qualifiers is None else (("Qualifiers", b.sub(u16(ev.qualifiers))),)
    system.append(_el("EventID", eid_attrs, (b.sub(u16(ev.event_id)),)))
    if not ev.classic:
        system.append(_el("Version", (), (b.sub(u8(ev.version)),)))
    system.append(_el("Level", (), (b.sub(u8(ev.level)),)))
    system.append(_el("Task", (), (b.sub(u16(ev.task)),)))
    if not ev.classic:
        system.append(_el("Opcode", (), (b.sub(u8(ev.opcode)),)))
    system.append(_el("Keywords", (), (b.sub(hex64(ev.keywords)),)))
    system.append(_el("TimeCreated", (("SystemTime", b.sub(filetime(ev.time))),)))
    system.append(_el("EventRecordID", (), (b.sub(u64(record_id)),)))
    if not ev.classic:
        corr = () if ev.activity_id is None else (("ActivityID", b.sub(guid(ev.activity_id))),)
        system.append(_el("Correlation", corr))
        system.append(_el("Execution", (
            ("ProcessID", b.sub(u32(ev.process_id))),
            ("ThreadID", b.sub(u32(ev.thread_id))),
        )))
    system.append(_el("Channel", (), (("T", ev.channel),)))
    system.append(_el("Computer", (), (("T", ev.computer),)))
    sec = () if ev.user_id is None else (("UserID", b.sub(sid(ev.user_id))),)
    system.append(_el("Security", sec))
    body: list[Node] = [_el("System", (), tuple(system))]

    if ev.user_data is not None:
        ud = ev.user_data
        kids = tuple(_el(k, (), (b.sub(coerce(v)),)) for k, v in ud.fields.items())
        body.append(_el("UserData", (),
                        (_el(ud.element, (("xmlns", ("T", ud.namespace)),), kids),)))
    elif ev.data is not None or ev.binary is not None:
        items: list[Node] = []
        if isinstance(ev.data, Mapping):
            for k, v in ev.data.items():
                items.append(_el("Data", (("Name", ("T", k)),), (b.sub(coerce(v)),)))
        elif ev.data is not None:
            items.extend(_el("Data", (), (b.sub(coerce(v)),)) for v in ev.data)
        if ev.binary is not None:
            items.append(_el("Binary", (), (b.sub(coerce(bytes(ev.binary))),)))
        body.append(_el("EventData", (), tuple(items)))
    root = _el("Event", (("xmlns", ("T", EVENT_NS)),), tuple(body))
    return root, b.values


_SHAPES: dict[tuple, Node] = {}


def signature(event: Event, record_id: int) -> tuple[tuple, Node, list[Value]]:
    """(key, shape, values) of an event: the fast path of build() for writers.

    Values come out in the order build() assigns substitution indices; the key is a flat
    tuple naming the shape, so templates are looked up without hashing the nested shape.
    The first event of each key goes through build() and the two are checked to agree.
    """
    ev = event
    vals: list[Value] = []
    add = vals.append
    g = ev.provider_guid
    glit = g if isinstance(g, str) and g.startswith("{") else None
    if g is not None and glit is None:
        add(guid(g))
    if ev.qualifiers is not None:
        add(u16(ev.qualifiers))
    add(u16(ev.event_id))
    if not ev.classic:
        add(u8(ev.version))
    add(u8(ev.level))
    add(u16(ev.task))
    if not ev.classic:
        add(u8(ev.opcode))
    add(hex64(ev.keywords))
    add(filetime(ev.time))
    add(u64(record_id))
    if not ev.classic:
        if ev.activity_id is not None:
            add(guid(ev.activity_id))
        add(u32(ev.process_id))
        add(u32(ev.thread_id))
    if ev.user_id is not None:
        add(sid(ev.user_id))
    if ev.user_data is not None:
        ud = ev.user_data
        payload: tuple = ("U", ud.element, ud.namespace, tuple(ud.fields))
        vals.extend(coerce(v) for v in ud.fields.values())
    elif ev.data is not None or ev.binary is not None:
        named = isinstance(ev.data, Mapping)
        if named:
            vals.extend(coerce(v) for v in ev.data.values())
        elif ev.data is not None:
            vals.extend(coerce(v) for v in ev.data)
        if ev.binary is not None:
            add(coerce(bytes(ev.binary)))
        payload = ("D", tuple(ev.data) if named else len(ev.data or ()), named,
                   ev.binary is not None)
    else:
        payload = ()
    key = (ev.provider, g is not None, glit, ev.event_source_name, ev.qualifiers is not None,
           ev.classic, ev.activity_id is not None, ev.user_id is not None, ev.channel,
           ev.computer, payload, tuple(v.vtype for v in vals))
    shape = _SHAPES.get(key)
    if shape is None:
        shape, full = build(ev, record_id)
        if [(v.vtype, v.value) for v in full] != [(v.vtype, v.value) for v in vals]:
            raise AssertionError("signature() and build() disagree for "
                                 f"{ev.provider}/{ev.event_id}")
        _SHAPES[key] = shape
    return key, shape, vals


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _node_text(node: Node, values: Sequence[Value]) -> str:
    if node[0] == "T":
        return node[1]
    return values[node[1]].text()


def to_xml(shape: Node, values: Sequence[Value]) -> str:
    """Compact XML of a shape filled with its values, values rendered as the evtx crate does."""
    out: list[str] = []

    def walk(n: Node) -> None:
        if n[0] != "E":
            out.append(_esc(_node_text(n, values)))
            return
        _, name, attrs, kids = n
        out.append("<" + name)
        for an, av in attrs:
            out.append(f' {an}="{_esc(_node_text(av, values))}"')
        out.append(">")
        for k in kids:
            walk(k)
        out.append(f"</{name}>")

    walk(shape)
    return "".join(out)


Shape = Union[Node]
__all__ = ["Event", "UserData", "EVENT_NS", "build", "signature", "to_xml", "VT"]
