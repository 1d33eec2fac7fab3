"""Factories for the Windows events a hotpatch audit looks at, shaped like the real ones.

Field names, levels, tasks, opcodes and keywords are copied from real logs (the System logs
in omerbenamram/evtx and log2timeline/plaso samples, Setup-log Servicing events as published
by log-shipping projects). Where no public sample exists (WaaSMedic hotpatch enrolment
events) the shape is our own and says so in docs/evtx-writer.md.
"""
from __future__ import annotations

import datetime as _dt
import uuid

from .event import Event, UserData
from .values import boolean, filetime, guid, hex32, u8, u32

SYSTEM = "System"
SETUP = "Setup"
WUC_OPERATIONAL = "Microsoft-Windows-WindowsUpdateClient/Operational"
WAASMEDIC_OPERATIONAL = "Microsoft-Windows-WaaSMedic/Operational"
LOCAL_SYSTEM = "S-1-5-18"

WUC = "Microsoft-Windows-WindowsUpdateClient"
WUC_GUID = "945A8954-C147-4ACD-923F-40C45405A658"
WINDOWS_UPDATE_SERVICE = uuid.UUID("9482F4B4-E343-43B6-B170-9A65BC822C77")
SERVICING = "Microsoft-Windows-Servicing"
SERVICING_GUID = "BD12F3B8-FC40-4A61-A307-B7A013A069C1"
CBS_NS = "http://manifests.microsoft.com/win/2004/08/windows/setup_provider"
KERNEL_GENERAL_GUID = "A68CA8B7-004F-D7B6-A698-07E2DE0F1F5D"
KERNEL_POWER_GUID = "331C3B3A-2005-44C2-AC5E-77220C37D6B4"
SCM_GUID = "{555908d1-a6d7-4695-8e1e-26931d2012f4}"
USER32_GUID = "{b0aa8734-56f7-41cc-b2f4-de228e98b946}"
WAASMEDIC = "Microsoft-Windows-WaaSMedic"
# No public sample carries this provider's GUID; a stable name-derived one stands in.
WAASMEDIC_GUID = uuid.uuid5(uuid.NAMESPACE_URL, "urn:hpforensics:provider:" + WAASMEDIC)

# (opcode, keywords low bits, level) of WindowsUpdateClient events, from real System logs.
_WUC_SHAPE = {44: (12, 0x2004, 4), 43: (13, 0x2008, 4), 19: (13, 0x0018, 4), 20: (13, 0x0028, 2)}
_CHANNEL_KEYWORD = {SYSTEM: 0x8000000000000000, WUC_OPERATIONAL: 0x4000000000000000}
PACKAGE_STATES = {"Absent": 5000, "Staged": 5064, "Installed": 5112}


def wuc(event_id: int, when: _dt.datetime, computer: str, *, title: str, update_id: uuid.UUID,
        revision: int, channel: str = SYSTEM, error_code: int | None = None,
        activity: uuid.UUID | None = None, pid: int = 0, tid: int = 0) -> Event:
    """WindowsUpdateClient 44 download started / 43 install started / 19 installed / 20 failed."""
    opcode, kw, level = _WUC_SHAPE[event_id]
    data: dict = {}
    if event_id == 20:
        data["errorCode"] = hex32(error_code or 0)
    data["updateTitle"] = title
    data["updateGuid"] = guid(update_id)
    data["updateRevisionNumber"] = u32(revision)
    if event_id in (19, 20):
        data["serviceGuid"] = guid(WINDOWS_UPDATE_SERVICE)
    return Event(WUC, event_id, when, computer, channel, provider_guid=WUC_GUID, version=1,
                 level=level, task=1, opcode=opcode, keywords=_CHANNEL_KEYWORD[channel] | kw,
                 process_id=pid, thread_id=tid, user_id=LOCAL_SYSTEM, activity_id=activity,
                 data=data)


def servicing(event_id: int, when: _dt.datetime, computer: str, *, package: str,
              client: str = "WindowsUpdateAgent", initial: str = "Absent",
              intended: str = "Installed", error_code: int = 0, pid: int = 0,
              tid: int = 0) -> Event:
    """Servicing 1 initiating / 2 changed / 3 failed / 4 reboot required (Setup channel).

    Payload as Windows writes it: UserData CbsPackageInitiateChanges (1, no ErrorCode) or
    CbsPackageChangeState (2, 3, 4), states as numbers plus their "Textized" names.
    """
    f: dict = {"PackageIdentifier": package}
    if event_id == 1:
        f["InitialPackageState"] = str(PACKAGE_STATES[initial])
        f["InitialPackageStateTextized"] = initial
    f["IntendedPackageState"] = str(PACKAGE_STATES[intended])
    f["IntendedPackageStateTextized"] = intended
    if event_id != 1:
        f["ErrorCode"] = hex32(error_code)
    f["Client"] = client
    element = "CbsPackageInitiateChanges" if event_id == 1 else "CbsPackageChangeState"
    return Event(SERVICING, event_id, when, computer, SETUP, provider_guid=SERVICING_GUID,
                 level=2 if event_id == 3 else 0, task=1, keywords=0x8000000000000000,
                 process_id=pid, thread_id=tid, user_id=LOCAL_SYSTEM,
                 user_data=UserData(element, CBS_NS, f))


def kernel_boot(when: _dt.datetime, computer: str, build: int, qfe: int) -> Event:
    """Kernel-General 12: the operating system started (StartTime a little before)."""
    return Event("Microsoft-Windows-Kernel-General", 12, when, computer, SYSTEM,
                 provider_guid=KERNEL_GENERAL_GUID, task=1, keywords=0x8000000000000080,
                 process_id=4, thread_id=8, user_id=LOCAL_SYSTEM,
                 data={"MajorVersion": u32(10), "MinorVersion": u32(0),
                       "BuildVersion": u32(build), "QfeVersion": u32(qfe),
                       "ServiceVersion": u32(0), "BootMode": u8(0),
                       "StartTime": filetime(when - _dt.timedelta(seconds=19))})


def kernel_shutdown(when: _dt.datetime, computer: str) -> Event:
    """Kernel-General 13: the operating system is shutting down."""
    return Event("Microsoft-Windows-Kernel-General", 13, when, computer, SYSTEM,
                 provider_guid=KERNEL_GENERAL_GUID, task=2, keywords=0x8000000000000080,
                 process_id=4, thread_id=304, data={"StopTime": filetime(when)})


def _eventlog(event_id: int, when: _dt.datetime, computer: str, data: list, blob: bytes,
              level: int = 4) -> Event:
    return Event("EventLog", event_id, when, computer, SYSTEM, classic=True, qualifiers=32768,
                 level=level, keywords=0x80000000000000, data=data, binary=blob)


def _systemtime_blob(t: _dt.datetime) -> bytes:
    ms = t.microsecond // 1000
    return b"".join(x.to_bytes(2, "little") for x in (
        t.year, t.month, (t.weekday() + 1) % 7, t.day, t.hour, t.minute, t.second, ms))


def eventlog_started(when: _dt.datetime, computer: str) -> Event:
    """EventLog 6005: the Event log service was started."""
    return _eventlog(6005, when, computer, [""], _systemtime_blob(when) + bytes(8))


def eventlog_stopped(when: _dt.datetime, computer: str) -> Event:
    """EventLog 6006: the Event log service was stopped (clean shutdown)."""
    return _eventlog(6006, when, computer, [""], (1).to_bytes(8, "little"))


def eventlog_os_version(when: _dt.datetime, computer: str, build: int, qfe: int) -> Event:
    """EventLog 6009: OS version at boot."""
    return _eventlog(6009, when, computer, ["10.00.", str(build), "", "Multiprocessor Free",
                                            str(qfe)], b"")


def eventlog_unexpected(when: _dt.datetime, computer: str, last_up: _dt.datetime) -> Event:
    """EventLog 6008: the previous system shutdown was unexpected."""
    return _eventlog(6008, when, computer, [
        last_up.strftime("%I:%M:%S %p").lstrip("0"),
        f"{last_up.month}/{last_up.day}/{last_up.year}",
        "", "", "1044", "", ""], _systemtime_blob(last_up) * 2, level=2)


def user32_restart(when: _dt.datetime, computer: str, reason: str, code: int,
                   process: str = "C:\\Windows\\system32\\svchost.exe",
                   user: str = "NT AUTHORITY\\SYSTEM", user_sid: str = LOCAL_SYSTEM) -> Event:
    """USER32 1074: a process initiated a restart (param5 = restart)."""
    return Event("User32", 1074, when, computer, SYSTEM, provider_guid=USER32_GUID,
                 event_source_name="User32", qualifiers=32768, keywords=0x8080000000000000,
                 process_id=1180, thread_id=5236, user_id=user_sid,
                 data={"param1": f"{process} ({computer})", "param2": computer,
                       "param3": reason, "param4": f"0x{code:x}", "param5": "restart",
                       "param6": "", "param7": user})


def kernel_power_41(when: _dt.datetime, computer: str) -> Event:
    """Kernel-Power 41: the system rebooted without cleanly shutting down first."""
    return Event("Microsoft-Windows-Kernel-Power", 41, when, computer, SYSTEM,
                 provider_guid=KERNEL_POWER_GUID, version=8, level=1, task=63,
                 keywords=0x8000400000000002, process_id=4, thread_id=8, user_id=LOCAL_SYSTEM,
                 data={"BugcheckCode": u32(0), "BugcheckParameter1": hex32(0),
                       "BugcheckParameter2": hex32(0), "BugcheckParameter3": hex32(0),
                       "BugcheckParameter4": hex32(0), "SleepInProgress": u32(0),
                       "PowerButtonTimestamp": u32(0), "BootAppStatus": u32(0),
                       "Checkpoint": u8(0), "ConnectedStandbyInProgress": boolean(False)})


def scm_state(when: _dt.datetime, computer: str, service: str, state: str, key: str) -> Event:
    """Service Control Manager 7036: the <service> service entered the <state> state."""
    return Event("Service Control Manager", 7036, when, computer, SYSTEM, provider_guid=SCM_GUID,
                 event_source_name="Service Control Manager", qualifiers=16384,
                 keywords=0x8080000000000000, process_id=1012, thread_id=2240,
                 data={"param1": service, "param2": state},
                 binary=(key + "/" + ("4" if state == "running" else "1")).encode("utf-16-le")
                 + b"\0\0")


def waasmedic_enrolment(when: _dt.datetime, computer: str, *, enrolled: bool, vbs_state: int,
                        detail: str) -> Event:
    """WaaSMedic/Operational: the hotpatch enrolment policy state as the medic service saw it."""
    text = (f"Policy Update/AllowRebootlessUpdates:{'true' if enrolled else 'false'} "
            f"isEnrolled: {int(enrolled)} vbsState: {vbs_state}. {detail}")
    return Event(WAASMEDIC, 1, when, computer, WAASMEDIC_OPERATIONAL, provider_guid=WAASMEDIC_GUID,
                 version=0, level=4, task=0, keywords=0x4000000000000000, process_id=3316,
                 thread_id=7720, user_id=LOCAL_SYSTEM,
                 data={"PolicyName": "Update/AllowRebootlessUpdates",
                       "PolicyValue": "true" if enrolled else "false",
                       "isEnrolled": u32(int(enrolled)), "vbsState": u32(vbs_state),
                       "Message": text})
