"""One typed Event per log record that matters for update compliance.

Which records matter, and what each says:
- Microsoft-Windows-WindowsUpdateClient (System / Operational): 44 download started, 43
  installation started, 19 installed, 20 failed, 16 cannot connect, 24 uninstall failed,
  213 revert failed; updateTitle carries the KB, errorCode the failure.
- Microsoft-Windows-Servicing (Setup): 1 initiating changes (PackageIdentifier = KB, package
  states), 2 success, 3 failure, 4 reboot required.
- Microsoft-Windows-WaaSMedic*: enrolment evidence when it mentions AllowRebootlessUpdates.
- Registry values (registry.py: Velociraptor rows, .reg exports): AllowRebootlessUpdates = 1,
  a Hotpatch.* enrolment package key or HotPatchTableSize > 0 is enrolment evidence;
  AllowRebootlessUpdates = 0 says the device is not enrolled; PauseQualityUpdatesStart/EndTime under
  WindowsUpdate\\UX\\Settings or UpdatePolicy\\PolicyState says quality updates are paused;
  HotPatchRestrictions / the DisableCHPE policy say whether CHPE is off, PROCESSOR_ARCHITECTURE
  whether it is Arm64.
- Boot / shutdown evidence: Kernel-General 12 (boot, with the OS build) / 13 (shutdown),
  EventLog 6005 / 6009 (event log started at boot), 6006 (clean shutdown), 6008 (previous
  shutdown unexpected), 6013 (uptime), USER32 1074 (restart/shutdown initiated), Kernel-Power 41
  (rebooted without a clean shutdown).
- Any other record whose data mentions "hotpatch".
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass
from functools import lru_cache

from hpforensics.timeline.classify import Classifier, find_build, find_kb
from hpforensics.evtx.readers import ALL_EVENTS, SOME_EVENTS
from hpforensics.evtx.records import RawRecord
from hpforensics.evtx import registry
from hpforensics.textsafe import clean

log = logging.getLogger(__name__)

WUC = "Microsoft-Windows-WindowsUpdateClient"
SERVICING = "Microsoft-Windows-Servicing"


class Category(str, enum.Enum):
    DOWNLOAD = "update-download"
    START = "update-start"
    INSTALLED = "update-installed"
    FAILED = "update-failed"
    NO_CONNECTION = "update-no-connection"
    UNINSTALL_FAILED = "update-uninstall-failed"
    REVERT_FAILED = "update-revert-failed"
    UPDATE_OTHER = "update-other"
    SERVICING_START = "servicing-start"
    SERVICING_SUCCESS = "servicing-success"
    SERVICING_FAILURE = "servicing-failure"
    SERVICING_REBOOT = "servicing-reboot-required"
    SERVICING_OTHER = "servicing-other"
    ENROLMENT = "hotpatch-enrolment"
    NOT_ENROLLED = "hotpatch-not-enrolled"
    CHPE_DISABLED = "chpe-disabled"
    CHPE_ENABLED = "chpe-enabled"
    ARCH_ARM64 = "architecture-arm64"
    ARCH_X64 = "architecture-x64"
    WAASMEDIC = "waasmedic"
    BOOT = "boot"
    UNEXPECTED_REBOOT = "unexpected-reboot"
    SHUTDOWN = "shutdown"
    RESTART_INITIATED = "restart-initiated"
    UPTIME = "uptime"
    HOTPATCH_MENTION = "hotpatch-mention"
    QUALITY_PAUSED = "quality-updates-paused"

    def __str__(self) -> str:
        return self.value


BOOT_EVIDENCE = frozenset({Category.BOOT, Category.UNEXPECTED_REBOOT})
UPDATE_CATEGORIES = frozenset({
    Category.DOWNLOAD, Category.START, Category.INSTALLED, Category.FAILED,
    Category.UNINSTALL_FAILED, Category.REVERT_FAILED, Category.UPDATE_OTHER,
    Category.SERVICING_START, Category.SERVICING_SUCCESS, Category.SERVICING_FAILURE,
    Category.SERVICING_REBOOT, Category.SERVICING_OTHER,
})

_WUC_IDS = {44: Category.DOWNLOAD, 43: Category.START, 19: Category.INSTALLED,
            20: Category.FAILED, 16: Category.NO_CONNECTION, 24: Category.UNINSTALL_FAILED,
            213: Category.REVERT_FAILED}
_SERVICING_IDS = {1: Category.SERVICING_START, 2: Category.SERVICING_SUCCESS,
                  3: Category.SERVICING_FAILURE, 4: Category.SERVICING_REBOOT}
_SYSTEM_IDS = {
    ("Microsoft-Windows-Kernel-General", 12): Category.BOOT,
    ("Microsoft-Windows-Kernel-General", 13): Category.SHUTDOWN,
    ("Microsoft-Windows-Kernel-Power", 41): Category.UNEXPECTED_REBOOT,
    ("EventLog", 6005): Category.BOOT,
    ("EventLog", 6009): Category.BOOT,
    ("EventLog", 6006): Category.SHUTDOWN,
    ("EventLog", 6008): Category.UNEXPECTED_REBOOT,
    ("EventLog", 6013): Category.UPTIME,
    ("USER32", 1074): Category.RESTART_INITIATED,
    ("User32", 1074): Category.RESTART_INITIATED,
}
_FAILURES = frozenset({Category.FAILED, Category.UNINSTALL_FAILED, Category.REVERT_FAILED,
                       Category.SERVICING_FAILURE})
_SUCCESSES = frozenset({Category.INSTALLED, Category.SERVICING_SUCCESS})
_SERVICING_REBOOT = Category.SERVICING_REBOOT
_TRUE = frozenset({"true", "1", "yes"})
_REGISTRY = {registry.ENROLLED: Category.ENROLMENT, registry.NOT_ENROLLED: Category.NOT_ENROLLED,
             registry.CHPE_DISABLED: Category.CHPE_DISABLED,
             registry.CHPE_ENABLED: Category.CHPE_ENABLED,
             registry.ARM64: Category.ARCH_ARM64, registry.X64: Category.ARCH_X64}


@dataclass(slots=True)
class Event:
    """A normalised event. Times are UTC."""

    device: str
    time: dt.datetime | None
    channel: str
    provider: str
    event_id: int
    record_id: int
    source: str
    category: str
    kb: str = ""
    title: str = ""
    update_guid: str = ""
    revision: int | None = None
    error_code: str = ""
    result: str = ""  # success / failure / ""
    package_state: str = ""
    reboot_required: bool | None = None
    os_build: str = ""  # running build (boot events) or the build an update brings
    update_class: str = ""  # baseline / hotpatch / standard / out-of-band / ... / other
    release_month: str | None = ""  # None: a standard update whose month the title lacks
    detail: str = ""


def categorise(raw: RawRecord) -> Category | None:
    provider = raw.provider
    if provider == WUC:
        return _WUC_IDS.get(raw.event_id, Category.UPDATE_OTHER)
    if provider == SERVICING:
        return _SERVICING_IDS.get(raw.event_id, Category.SERVICING_OTHER)
    found = _SYSTEM_IDS.get((provider, raw.event_id))
    if found is not None:
        return found
    if provider == registry.PROVIDER and raw.channel == registry.CHANNEL:  # not an event log
        found = _REGISTRY.get(registry.evidence(raw.data))  # type: ignore[arg-type]
        if found is None and registry.quality_pause(raw.data) is not None:
            return Category.QUALITY_PAUSED
        return found
    if provider in ALL_EVENTS:  # WaaSMedic
        text = " ".join(raw.data.values()) + " " + raw.message
        return Category.ENROLMENT if "rebootless" in text.lower() else Category.WAASMEDIC
    if provider in SOME_EVENTS:
        return None
    if any("hotpatch" in v.lower() for v in raw.data.values()) or "hotpatch" in raw.message.lower():
        return Category.HOTPATCH_MENTION
    return None


# A log repeats the same device, channel, provider and update titles thousands of times: one
# string object each keeps a fleet's events small in memory (and in the pickles between
# processes, which keep shared objects shared).
_SHARED: dict[str, str] = {}


def _shared(text: str) -> str:
    found = _SHARED.get(text)
    if found is None:
        if len(_SHARED) > 100_000:
            _SHARED.clear()
        # record text is the attacker's: a lone surrogate (a JSON export's "\ud800") would
        # stop every UTF-8 output; escaped here, once per distinct string
        found = _SHARED[text] = clean(text)
    return found


# What normalise() does beyond the common fields, per category (one dict lookup per record
# instead of a chain of enum comparisons: an enum member lookup costs ~70 ns each).
_UPDATE, _MENTION, _DETAIL, _BOOT, _RESTART, _PAUSE = range(1, 7)
_STEPS = {c: _UPDATE for c in UPDATE_CATEGORIES}
_STEPS.update({Category.HOTPATCH_MENTION: _MENTION, Category.ENROLMENT: _DETAIL,
               Category.NOT_ENROLLED: _DETAIL, Category.WAASMEDIC: _DETAIL, Category.BOOT: _BOOT,
               Category.CHPE_DISABLED: _DETAIL, Category.CHPE_ENABLED: _DETAIL,
               Category.ARCH_ARM64: _DETAIL, Category.ARCH_X64: _DETAIL,
               Category.RESTART_INITIATED: _RESTART, Category.QUALITY_PAUSED: _PAUSE})
_VALUES = {c: c.value for c in Category}


def normalise(raw: RawRecord, source: str, device_hint: str,
              classifier: Classifier | None) -> Event | None:
    """The Event for one record, or None when the record does not matter here."""
    category = categorise(raw)
    if category is None:
        return None
    data = raw.data
    ev = Event(  # device, time, channel, provider, event_id, record_id, source, category
        _shared(raw.computer or device_hint or "unknown"), raw.time, _shared(raw.channel),
        _shared(raw.provider), raw.event_id, raw.record_id, source, _VALUES[category])
    step = _STEPS.get(category)
    if step == _UPDATE or step == _MENTION:
        _update_fields(ev, category, data, raw.message)
        if classifier is not None and (ev.kb or ev.title or ev.os_build) and step == _UPDATE:
            c = classifier.classify(ev.kb, ev.title, ev.os_build, ev.time)
            ev.update_class, ev.release_month = c.update_class, c.release_month
    if step == _MENTION or step == _DETAIL:
        text = raw.message or " ".join(v for v in data.values() if v)
        ev.detail = clean(text[:300])
    elif step == _BOOT and raw.provider == "Microsoft-Windows-Kernel-General":
        if data.get("BuildVersion"):
            ev.os_build = clean(f"{data['BuildVersion']}.{data.get('QfeVersion', '0')}")
    elif step == _PAUSE:  # 'from|until <time>', as rows.device_row reads it back
        which, when = registry.quality_pause(data)  # type: ignore[misc]
        ev.detail = f"{which} {when:%Y-%m-%dT%H:%M:%SZ}"
    elif step == _RESTART:
        # param1 process, param3 reason, param5 shutdown type (positional in older logs)
        reason = data.get("param3") or data.get("Data3", "")
        kind = data.get("param5") or data.get("Data5", "")
        ev.detail = clean(f"{kind}: {reason}".strip(": "))
    return ev


def _update_fields(ev: Event, category: Category, data: dict[str, str], message: str) -> None:
    get = data.get
    package = get("PackageIdentifier") or get("PackageName") or ""
    (ev.title, ev.kb, ev.os_build, ev.update_guid, ev.revision, ev.error_code,
     ev.package_state, reboot) = _update_info(
        get("updateTitle", ""), package, get("updateGuid", ""), get("updateRevisionNumber", ""),
        get("errorCode") or get("ErrorCode") or "", get("InitialPackageState", ""),
        get("IntendedPackageState") or get("PackageState") or "",
        get("RebootRequired") or get("RestartRequired") or "")
    if not ev.kb:  # rare: the KB only in some other field or in the rendered message
        ev.kb = _shared(find_kb(*(v for k, v in data.items() if k != "updateTitle"), message))
    if category in _FAILURES or (ev.error_code and ev.error_code != "0x00000000"):
        ev.result = "failure"
    elif category in _SUCCESSES:
        ev.result = "success"
    if category == _SERVICING_REBOOT or reboot is True:
        ev.reboot_required = True
    elif reboot is False:
        ev.reboot_required = False


@lru_cache(maxsize=8192)
def _update_info(title: str, package: str, guid: str, rev: str, code: str, initial: str,
                 intended: str, reboot: str) -> tuple:
    """The derived update fields; cached, as a fleet logs the same few updates many times."""
    reboot = reboot.lower()
    return (
        _shared(title),
        _shared(find_kb(title, package)),
        _shared(find_build(title, package)),
        _shared(guid.strip("{}").upper()),
        int(rev) if rev.strip().isdigit() else None,
        clean(_hex_code(code)),
        clean(f"{initial}->{intended}" if initial and intended else (intended or initial)),
        True if reboot in _TRUE else False if reboot in ("false", "0", "no") else None,
    )


def _hex_code(code: str) -> str:
    """errorCode as 0x%08x whether the log held '0x80248007', '-2145091577' or '2149875719'."""
    text = code.strip()
    if not text:
        return ""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return text
    return f"{value & 0xFFFFFFFF:#010x}"
