"""Factories for the ETW events of an update audit trace, shaped by the providers' manifests.

Field names, types and order follow the manifests dissect.etl bundles (and etl-parser's
generated parsers agree): Microsoft-Windows-WindowsUpdateClient 19/20/43/44 version 1,
Microsoft-Windows-Kernel-General 12/13 version 0, Microsoft-Windows-Kernel-Process 5
(ImageLoad) version 0. Opcodes, levels and keywords of the update events are the ones the
EVTX sample writer took from real System logs.
"""
from __future__ import annotations

import datetime as _dt
import uuid

from evtx_writer.windows import _WUC_SHAPE as WUC_SHAPE  # (opcode, keywords, level) per id
from evtx_writer.windows import PACKAGE_STATES, WINDOWS_UPDATE_SERVICE

from .event import CHANNEL_SYSTEM, EtwEvent, session_item, sid_item
from .payload import Field
from .tracelogging import tl_event

WUC = "Microsoft-Windows-WindowsUpdateClient"
WUC_GUID = uuid.UUID("945a8954-c147-4acd-923f-40c45405a658")
KERNEL_GENERAL = "Microsoft-Windows-Kernel-General"
KERNEL_GENERAL_GUID = uuid.UUID("a68ca8b7-004f-d7b6-a698-07e2de0f1f5d")
SERVICING = "Microsoft-Windows-Servicing"
SERVICING_GUID = uuid.UUID("bd12f3b8-fc40-4a61-a307-b7a013a069c1")
SERVICING_SETUP_CHANNEL = 0x10  # the provider's own channel (the Setup log); the id is ours
KERNEL_PROCESS = "Microsoft-Windows-Kernel-Process"
KERNEL_PROCESS_GUID = uuid.UUID("22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716")

SYSTEM_KEYWORD = 0x8000000000000000  # the channel bit of events bound to the System log
BOOT_PERFORMANCE = 0x80  # Kernel-General keyword
WINEVENT_KEYWORD_IMAGE = 0x40  # Kernel-Process keyword
KERNEL_PROCESS_ANALYTIC = 0x10  # the provider's own (analytic) channel id
LOCAL_SYSTEM = "S-1-5-18"


def wuc(event_id: int, when: _dt.datetime, *, title: str, update_id: uuid.UUID, revision: int,
        error_code: int = 0, pid: int = 0, tid: int = 0) -> EtwEvent:
    """WindowsUpdateClient 44 download started / 43 install started / 19 installed / 20 failed."""
    opcode, keywords, level = WUC_SHAPE[event_id]
    fields = [Field("errorCode", "HexInt32", error_code)] if event_id == 20 else []
    fields += [Field("updateTitle", "UnicodeString", title),
               Field("updateGuid", "GUID", update_id),
               Field("updateRevisionNumber", "UInt32", revision)]
    if event_id in (19, 20):
        fields.append(Field("serviceGuid", "GUID", WINDOWS_UPDATE_SERVICE))
    # the audit session enables the provider with EVENT_ENABLE_PROPERTY_SID | _TS_ID: each
    # event carries the writer's SID (wuauserv runs as LocalSystem) and terminal session
    return EtwEvent(WUC_GUID, WUC, event_id, 1, when, tuple(fields), channel=CHANNEL_SYSTEM,
                    level=level, opcode=opcode, task=1, keywords=SYSTEM_KEYWORD | keywords,
                    process_id=pid, thread_id=tid,
                    extended=(sid_item(LOCAL_SYSTEM), session_item(0)))


def servicing(event_id: int, when: _dt.datetime, *, package: str, client: str,
              initial: str = "Absent", intended: str = "Installed", error_code: int = 0,
              pid: int = 0, tid: int = 0) -> EtwEvent:
    """Servicing 1 initiating / 2 changed / 3 failed / 4 reboot required, with the ETW
    template's field names (the Setup log renders the same values as PackageIdentifier,
    InitialPackageState, IntendedPackageState, ErrorCode, Client)."""
    fields = [Field("identifier", "UnicodeString", package)]
    if event_id == 1:
        fields += [Field("currentPackageState", "UInt32", PACKAGE_STATES[initial]),
                   Field("currentPackageStateTextized", "UnicodeString", initial)]
    fields += [Field("targetPackageState", "UInt32", PACKAGE_STATES[intended]),
               Field("targetPackageStateTextized", "UnicodeString", intended)]
    if event_id != 1:
        fields.append(Field("errorCode", "UnicodeString", f"0x{error_code:08x}"))
    fields.append(Field("client", "UnicodeString", client))
    return EtwEvent(SERVICING_GUID, SERVICING, event_id, 0, when, tuple(fields),
                    channel=SERVICING_SETUP_CHANNEL, level=2 if event_id == 3 else 0, task=1,
                    process_id=pid, thread_id=tid)


def system_start(when: _dt.datetime, boot: _dt.datetime, build: int, qfe: int) -> EtwEvent:
    """Kernel-General 12: the operating system started (with the running build)."""
    fields = (Field("MajorVersion", "UInt32", 10), Field("MinorVersion", "UInt32", 0),
              Field("BuildVersion", "UInt32", build), Field("QfeVersion", "UInt32", qfe),
              Field("ServiceVersion", "UInt16", 0), Field("BootMode", "UInt32", 0),
              Field("StartTime", "FILETIME", boot))
    return EtwEvent(KERNEL_GENERAL_GUID, KERNEL_GENERAL, 12, 0, when, fields,
                    channel=CHANNEL_SYSTEM, task=1, keywords=SYSTEM_KEYWORD | BOOT_PERFORMANCE,
                    process_id=4, thread_id=8)


def system_stop(when: _dt.datetime) -> EtwEvent:
    """Kernel-General 13: the operating system is shutting down."""
    return EtwEvent(KERNEL_GENERAL_GUID, KERNEL_GENERAL, 13, 0, when,
                    (Field("StopTime", "FILETIME", when),), channel=CHANNEL_SYSTEM, task=2,
                    keywords=SYSTEM_KEYWORD | BOOT_PERFORMANCE, process_id=4, thread_id=12)


def image_load(when: _dt.datetime, *, pid: int, name: str, base: int, size: int, checksum: int,
               timestamp: int) -> EtwEvent:
    """Kernel-Process 5 (ImageLoad): an image mapped into a process (pid 4: the kernel)."""
    fields = (Field("ImageBase", "Pointer", base), Field("ImageSize", "Pointer", size),
              Field("ProcessID", "UInt32", pid), Field("ImageCheckSum", "UInt32", checksum),
              Field("TimeDateStamp", "UInt32", timestamp), Field("DefaultBase", "Pointer", base),
              Field("ImageName", "UnicodeString", name))
    return EtwEvent(KERNEL_PROCESS_GUID, KERNEL_PROCESS, 5, 0, when, fields,
                    channel=KERNEL_PROCESS_ANALYTIC, task=5, keywords=WINEVENT_KEYWORD_IMAGE,
                    process_id=pid, thread_id=pid + 4)


# The kernel reports hotpatch operations as TraceLogging telemetry (process, image, status,
# base checksum and timestamp, patch path, machine); its provider and event names are not
# public: these are ours.
HOTPATCH_TELEMETRY = "Microsoft.Windows.Kernel.HotPatch"


def hotpatch_applied(when: _dt.datetime, *, image: str, base_checksum: int,
                     base_timestamp: int, patch_path: str, pid: int = 4) -> EtwEvent:
    fields = (Field("ProcessId", "UInt32", pid), Field("ImageName", "UnicodeString", image),
              Field("Status", "HexInt32", 0), Field("BaseCheckSum", "HexInt32", base_checksum),
              Field("BaseTimeDateStamp", "HexInt32", base_timestamp),
              Field("PatchPath", "UnicodeString", patch_path),
              Field("Machine", "UInt16", 0x8664))
    return tl_event(HOTPATCH_TELEMETRY, "HotPatchApplied", when, fields, pid=pid, tid=pid + 8)
