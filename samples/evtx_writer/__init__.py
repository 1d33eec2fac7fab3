"""A small writer for Windows XML Event Log (.evtx) files, written from the published format.

    from evtx_writer import EvtxWriter, Event
    with EvtxWriter("System.evtx") as w:
        w.add(Event("Microsoft-Windows-WindowsUpdateClient", 19, when, "PC-01", "System",
                    provider_guid="945A8954-C147-4ACD-923F-40C45405A658",
                    data={"updateTitle": "...", "updateGuid": guid(...), ...}))
"""
from .chunk import CHUNK_SIZE, name_hash
from .event import EVENT_NS, Event, UserData, build, to_xml
from .values import (
    VT, Value, binary, boolean, coerce, filetime, guid, hex32, hex64, i32, i64, null, sid,
    string, systemtime, u8, u16, u32, u64,
)
from .writer import EvtxWriter, write_evtx

__all__ = [
    "CHUNK_SIZE", "EVENT_NS", "Event", "EvtxWriter", "UserData", "VT", "Value", "binary",
    "boolean", "build", "coerce", "filetime", "guid", "hex32", "hex64", "i32", "i64",
    "name_hash", "null", "sid", "string", "systemtime", "to_xml", "u8", "u16", "u32", "u64",
    "write_evtx",
]
