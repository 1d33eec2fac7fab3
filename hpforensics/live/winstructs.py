"""Windows process structures and the pure parts of the Windows live backend.

Declared once as ctypes structures for both pointer sizes (x64 and WoW64/x86), parsed from bytes
read through any reader, so everything here runs and is tested on Linux; only
live/windows.py calls Windows. Layouts: phnt (winsiderss/phnt 7e097448 ntldr.h,
ntpebteb.h, ntpsapi.h, ntexapi.h) and the public symbols of 24H2 ntdll (LDR_DATA_TABLE_ENTRY
0x138 bytes on x64, CheckSum 0x120, ActivePatchImageBase 0x128, HotPatchState 0x130).
"""
from __future__ import annotations

import ctypes
import enum
import logging
import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

log = logging.getLogger(__name__)

Reader = Callable[[int, int], "bytes | None"]
MAX_LOADER_ENTRIES = 8192  # a loop in a corrupt or hostile list must end


class HotPatchState(enum.IntEnum):
    """LDR_HOT_PATCH_STATE (phnt ntldr.h)."""

    BASE_IMAGE = 0
    NOT_APPLIED = 1
    APPLIED_REVERSE = 2
    APPLIED_FORWARD = 3
    FAILED_TO_PATCH = 4


LOAD_REASON_PATCH_IMAGE = 9  # LDR_DLL_LOAD_REASON.LoadReasonPatchImage
PEB_PROCESS_IMAGES_HOTPATCHED = 1 << 7  # PEB.CrossProcessFlags bit 7


def _layouts(ptr: type) -> dict[str, type[ctypes.Structure]]:
    """The structures for one pointer size (c_uint64 for x64, c_uint32 for x86/WoW64)."""

    class UnicodeString(ctypes.Structure):
        _fields_ = [("Length", ctypes.c_uint16), ("MaximumLength", ctypes.c_uint16),
                    ("Buffer", ptr)]

    class ListEntry(ctypes.Structure):
        _fields_ = [("Flink", ptr), ("Blink", ptr)]

    class BalancedNode(ctypes.Structure):
        _fields_ = [("Left", ptr), ("Right", ptr), ("ParentValue", ptr)]

    class LdrDataTableEntry(ctypes.Structure):
        _fields_ = [
            ("InLoadOrderLinks", ListEntry),
            ("InMemoryOrderLinks", ListEntry),
            ("InInitializationOrderLinks", ListEntry),
            ("DllBase", ptr),
            ("EntryPoint", ptr),
            ("SizeOfImage", ctypes.c_uint32),
            ("FullDllName", UnicodeString),
            ("BaseDllName", UnicodeString),
            ("Flags", ctypes.c_uint32),
            ("ObsoleteLoadCount", ctypes.c_uint16),
            ("TlsIndex", ctypes.c_uint16),
            ("HashLinks", ListEntry),
            ("TimeDateStamp", ctypes.c_uint32),
            ("EntryPointActivationContext", ptr),
            ("Lock", ptr),
            ("DdagNode", ptr),
            ("NodeModuleLink", ListEntry),
            ("LoadContext", ptr),
            ("ParentDllBase", ptr),
            ("SwitchBackContext", ptr),
            ("BaseAddressIndexNode", BalancedNode),
            ("MappingInfoIndexNode", BalancedNode),
            ("OriginalBase", ptr),
            ("LoadTime", ctypes.c_int64),
            ("BaseNameHashValue", ctypes.c_uint32),
            ("LoadReason", ctypes.c_int32),
            ("ImplicitPathOptions", ctypes.c_uint32),
            ("ReferenceCount", ctypes.c_uint32),
            ("DependentLoadFlags", ctypes.c_uint32),
            ("SigningLevel", ctypes.c_uint8),
            ("CheckSum", ctypes.c_uint32),  # since 22H1
            ("ActivePatchImageBase", ptr),  # since 24H2: the patch image applied to this module
            ("HotPatchState", ctypes.c_int32),
        ]

    class PebLdrData(ctypes.Structure):
        _fields_ = [("Length", ctypes.c_uint32), ("Initialized", ctypes.c_uint8),
                    ("SsHandle", ptr), ("InLoadOrderModuleList", ListEntry)]

    class PebHead(ctypes.Structure):
        """The first fields of the PEB, up to CrossProcessFlags."""

        _fields_ = [
            ("InheritedAddressSpace", ctypes.c_uint8),
            ("ReadImageFileExecOptions", ctypes.c_uint8),
            ("BeingDebugged", ctypes.c_uint8),
            ("BitField", ctypes.c_uint8),
            ("Mutant", ptr),
            ("ImageBaseAddress", ptr),
            ("Ldr", ptr),
            ("ProcessParameters", ptr),
            ("SubSystemData", ptr),
            ("ProcessHeap", ptr),
            ("FastPebLock", ptr),
            ("AtlThunkSListPtr", ptr),
            ("IFEOKey", ptr),
            ("CrossProcessFlags", ctypes.c_uint32),
        ]

    class WorkingSetExInformation(ctypes.Structure):
        """PSAPI_WORKING_SET_EX_INFORMATION: VirtualAddress + the attribute bits."""

        _fields_ = [("VirtualAddress", ptr), ("VirtualAttributes", ptr)]

    return {"UNICODE_STRING": UnicodeString, "LIST_ENTRY": ListEntry,
            "LDR_DATA_TABLE_ENTRY": LdrDataTableEntry, "PEB_LDR_DATA": PebLdrData,
            "PEB": PebHead, "WORKING_SET_EX_INFORMATION": WorkingSetExInformation}


LAYOUT = {64: _layouts(ctypes.c_uint64), 32: _layouts(ctypes.c_uint32)}


def offset_of(bits: int, struct_name: str, field: str) -> int:
    return getattr(LAYOUT[bits][struct_name], field).offset


@dataclass(frozen=True)
class LoaderEntry:
    """One module of the loader's in-load-order list, as the target's own PEB records it."""

    base: int
    size: int
    full_name: str
    base_name: str
    timestamp: int
    checksum: int
    load_reason: int
    active_patch_base: int
    hotpatch_state: int
    bits: int  # 64: the native list; 32: the WoW64 list

    @property
    def is_patch_image(self) -> bool:
        return self.load_reason == LOAD_REASON_PATCH_IMAGE


def _read_struct(read: Reader, address: int,
                 cls: type[ctypes.Structure]) -> ctypes.Structure | None:
    raw = read(address, ctypes.sizeof(cls))
    if raw is None or len(raw) < ctypes.sizeof(cls):
        return None
    return cls.from_buffer_copy(raw)


def read_unicode(read: Reader, us: ctypes.Structure) -> str:
    if not us.Buffer or not us.Length or us.Length > 0x8000:
        return ""
    raw = read(us.Buffer, us.Length)
    return raw.decode("utf-16-le", "replace") if raw else ""


def read_peb(read: Reader, peb_address: int, bits: int) -> ctypes.Structure | None:
    return _read_struct(read, peb_address, LAYOUT[bits]["PEB"])


def walk_loader(read: Reader, peb_address: int, bits: int) -> list[LoaderEntry]:
    """The in-load-order module list from the PEB; stops at the head, a loop, or a bad read."""
    layout = LAYOUT[bits]
    peb = read_peb(read, peb_address, bits)
    if peb is None or not peb.Ldr:
        return []
    ldr = _read_struct(read, peb.Ldr, layout["PEB_LDR_DATA"])
    if ldr is None:
        return []
    head = peb.Ldr + offset_of(bits, "PEB_LDR_DATA", "InLoadOrderModuleList")
    out: list[LoaderEntry] = []
    seen: set[int] = set()
    link = ldr.InLoadOrderModuleList.Flink
    while link and link != head and link not in seen and len(out) < MAX_LOADER_ENTRIES:
        seen.add(link)
        # InLoadOrderLinks is the first field: the link address is the entry address.
        e = _read_struct(read, link, layout["LDR_DATA_TABLE_ENTRY"])
        if e is None:
            log.debug("loader entry at %#x unreadable; list cut short", link)
            break
        out.append(LoaderEntry(
            base=e.DllBase, size=e.SizeOfImage, full_name=read_unicode(read, e.FullDllName),
            base_name=read_unicode(read, e.BaseDllName), timestamp=e.TimeDateStamp,
            checksum=e.CheckSum, load_reason=e.LoadReason,
            active_patch_base=e.ActivePatchImageBase, hotpatch_state=e.HotPatchState, bits=bits,
        ))
        link = e.InLoadOrderLinks.Flink
    return out


# -- QueryWorkingSetEx --------------------------------------------------------------------------
WS_VALID = 1 << 0
WS_SHARED = 1 << 15  # in both the valid and the invalid form of the block


def unchanged_from_working_set(attributes: Iterable[int]) -> list[bool]:
    """A page still shared with the image section (the prototype page) cannot differ from
    the section; a private page (copy-on-write done, or never shared) must be read."""
    return [bool(a & WS_SHARED) for a in attributes]


def parse_working_set(raw: bytes, bits: int) -> list[int]:
    fmt = "<QQ" if bits == 64 else "<II"
    return [attrs for _, attrs in struct.iter_unpack(fmt, raw)]


# -- VirtualQueryEx regions -----------------------------------------------------------------------
MEM_COMMIT, MEM_IMAGE, MEM_MAPPED = 0x1000, 0x1000000, 0x40000
PAGE_GUARD, PAGE_NOACCESS = 0x100, 0x01
_PROTECT = {0x02: "r--", 0x04: "rw-", 0x08: "rw-", 0x10: "--x", 0x20: "r-x", 0x40: "rwx",
            0x80: "rwx"}


@dataclass(frozen=True)
class BasicInfo:
    """MEMORY_BASIC_INFORMATION, the fields used."""

    base: int
    allocation_base: int
    size: int
    state: int
    protect: int
    type: int


def perms(protect: int, image: bool) -> str:
    rwx = _PROTECT.get(protect & 0xFF, "---")
    if protect & PAGE_GUARD:
        rwx = "---"
    return rwx + "p"  # image pages are private copy-on-write views of the section


def group_images(infos: Sequence[BasicInfo]) -> list[tuple[int, int, list[BasicInfo]]]:
    """(allocation base, size, committed runs) of every MEM_IMAGE allocation, by base."""
    groups: dict[int, list[BasicInfo]] = {}
    for mbi in infos:
        if mbi.type == MEM_IMAGE and mbi.state == MEM_COMMIT:
            groups.setdefault(mbi.allocation_base, []).append(mbi)
    out = []
    for base, runs in sorted(groups.items()):
        end = max(r.base + r.size for r in runs)
        out.append((base, end - base, sorted(runs, key=lambda r: r.base)))
    return out


def allocation_end(infos: Sequence[BasicInfo], base: int) -> int:
    """End of the allocation at `base`: every region VirtualQueryEx gives with that
    AllocationBase, committed or reserved (24H2 extension pages need not be committed)."""
    return max((i.base + i.size for i in infos if i.allocation_base == base), default=base)


def nt_to_dos_path(path: str, devices: dict[str, str]) -> str:
    """\\Device\\HarddiskVolume3\\Windows\\x.dll -> C:\\Windows\\x.dll, given QueryDosDevice's
    {device: drive} map; unknown devices are left as they are."""
    for device, drive in sorted(devices.items(), key=lambda kv: -len(kv[0])):
        if path.lower().startswith(device.lower() + "\\"):
            return drive + path[len(device):]
    return path
