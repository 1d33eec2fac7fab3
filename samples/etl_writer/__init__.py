"""A small writer for ETW trace files (.etl), written from the published format.

    from etl_writer import EtlWriter, Session, windows as W
    w = EtlWriter(Session("HotpatchAudit", r"C:\\...\\HotpatchAudit.etl", boot, start, end))
    w.add(W.wuc(19, when, title="... (KB5052105) ...", update_id=guid, revision=1))
    w.write("HotpatchAudit.etl")
"""
from .event import CHANNEL_SYSTEM, EtwEvent
from .payload import Field, filetime
from .writer import EtlWriter, Session, TimeZone

__all__ = ["CHANNEL_SYSTEM", "EtlWriter", "EtwEvent", "Field", "Session", "TimeZone", "filetime"]
