"""Kernel structure layouts (Windows 11 24H2, x64) declared once, and the ISF writer.

Offsets follow public 24H2 layouts: _EPROCESS (UniqueProcessId 0x1D0, ActiveProcessLinks 0x1D8,
Peb 0x2E0, ImageFileName 0x338, ThreadListHead 0x370, VadRoot 0x558), _KPROCESS
DirectoryTableBase 0x28, _MMVAD_SHORT (StartingVpn 0x18 ... u 0x30) / _MMVAD (Subsection 0x48),
_PEB / _PEB_LDR_DATA / _LDR_DATA_TABLE_ENTRY (phnt ntldr.h / ntpebteb.h: CheckSum 0x120,
ActivePatchImageBase 0x128, HotPatchState 0x130, LoadReason 0x10C; PEB.CrossProcessFlags 0x50
bit 7 ProcessImagesHotPatched). Fields no plugin reads are left out: every structure keeps its
real size and the offsets of the members it declares. Types that Volatility's Windows symbol
class expects to exist but that this image never instantiates are declared opaque (size only).
"""
from __future__ import annotations

from typing import Any

Type = dict[str, Any]


def base(name: str) -> Type:
    return {"kind": "base", "name": name}


U8, U16, U32, U64 = (base(n) for n in ("unsigned char", "unsigned short", "unsigned long",
                                        "unsigned long long"))
I16, I32, I64, INT = base("short"), base("long"), base("long long"), base("int")
VOID, WCHAR = base("void"), base("wchar")


def ptr(t: Type) -> Type:
    return {"kind": "pointer", "subtype": t}


def st(name: str) -> Type:
    return {"kind": "struct", "name": name}


def un(name: str) -> Type:
    return {"kind": "union", "name": name}


def arr(count: int, t: Type) -> Type:
    return {"kind": "array", "count": count, "subtype": t}


def bits(pos: int, length: int, t: Type = U32) -> Type:
    return {"kind": "bitfield", "bit_position": pos, "bit_length": length, "type": t}


def en(name: str) -> Type:
    return {"kind": "enum", "name": name}


PVOID = ptr(VOID)

BASE_TYPES: dict[str, tuple[str, int, bool]] = {
    "char": ("char", 1, True), "unsigned char": ("int", 1, False), "short": ("int", 2, True),
    "unsigned short": ("int", 2, False), "long": ("int", 4, True),
    "unsigned long": ("int", 4, False), "int": ("int", 4, True),
    "unsigned int": ("int", 4, False), "long long": ("int", 8, True),
    "unsigned long long": ("int", 8, False), "pointer": ("int", 8, False),
    "wchar": ("char", 2, True), "void": ("void", 0, False), "bool": ("bool", 1, False),
}

# name: (kind, size, {field: (offset, type)})
STRUCTS: dict[str, tuple[str, int, dict[str, tuple[int, Type]]]] = {
    "_LIST_ENTRY": ("struct", 0x10, {"Flink": (0, ptr(st("_LIST_ENTRY"))),
                                      "Blink": (8, ptr(st("_LIST_ENTRY")))}),
    "_UNICODE_STRING": ("struct", 0x10, {"Length": (0, U16), "MaximumLength": (2, U16),
                                          "Buffer": (8, ptr(WCHAR))}),
    "_LARGE_INTEGER": ("union", 8, {"LowPart": (0, U32), "HighPart": (4, I32),
                                     "QuadPart": (0, I64)}),
    "_EX_FAST_REF": ("struct", 8, {"Object": (0, PVOID), "RefCnt": (0, bits(0, 4, U64)),
                                   "Value": (0, U64)}),
    "_RTL_BALANCED_NODE": ("struct", 0x18, {
        "Left": (0, ptr(st("_RTL_BALANCED_NODE"))), "Right": (8, ptr(st("_RTL_BALANCED_NODE"))),
        "Children": (0, arr(2, ptr(st("_RTL_BALANCED_NODE")))),
        "Red": (0x10, bits(0, 1, U8)), "Balance": (0x10, bits(0, 2, U8)),
        "ParentValue": (0x10, U64)}),
    "_RTL_AVL_TREE": ("struct", 8, {"Root": (0, ptr(st("_RTL_BALANCED_NODE")))}),
    "_DISPATCHER_HEADER": ("struct", 0x18, {"Type": (0, U8), "Signalling": (1, U8),
                                             "Size": (2, U8), "SignalState": (4, I32),
                                             "WaitListHead": (8, st("_LIST_ENTRY"))}),
    "_KPROCESS": ("struct", 0x1C8, {"Header": (0, st("_DISPATCHER_HEADER")),
                                    "ProfileListHead": (0x18, st("_LIST_ENTRY")),
                                    "DirectoryTableBase": (0x28, U64),
                                    "ThreadListHead": (0x30, st("_LIST_ENTRY"))}),
    "_EPROCESS": ("struct", 0xB80, {
        "Pcb": (0, st("_KPROCESS")), "UniqueProcessId": (0x1D0, PVOID),
        "ActiveProcessLinks": (0x1D8, st("_LIST_ENTRY")), "Flags2": (0x1F0, U32),
        "Flags": (0x1F4, U32), "CreateTime": (0x1F8, un("_LARGE_INTEGER")),
        "SessionProcessLinks": (0x230, st("_LIST_ENTRY")), "Token": (0x248, st("_EX_FAST_REF")),
        "InheritedFromUniqueProcessId": (0x2D0, PVOID), "OwnerProcessId": (0x2D8, U64),
        "Peb": (0x2E0, ptr(st("_PEB"))), "Session": (0x2E8, PVOID),
        "ObjectTable": (0x300, ptr(st("_HANDLE_TABLE"))),
        "WoW64Process": (0x310, ptr(st("_EWOW64PROCESS"))),
        "ImageFileName": (0x338, arr(15, U8)), "PriorityClass": (0x347, U8),
        "ThreadListHead": (0x370, st("_LIST_ENTRY")), "ActiveThreads": (0x380, U32),
        "ExitTime": (0x4A8, un("_LARGE_INTEGER")), "VadRoot": (0x558, st("_RTL_AVL_TREE")),
        "VadHint": (0x560, PVOID), "VadCount": (0x568, U64)}),
    "_EWOW64PROCESS": ("struct", 0x10, {"Peb": (0, PVOID), "Machine": (8, U16)}),
    "_HANDLE_TABLE": ("struct", 0x80, {"NextHandleNeedingPool": (0, U32),
                                        "TableCode": (8, U64)}),
    "_KSYSTEM_TIME": ("struct", 0xC, {"LowPart": (0, U32), "High1Time": (4, I32),
                                       "High2Time": (8, I32)}),
    "_KUSER_SHARED_DATA": ("struct", 0x738, {
        "TickCountLowDeprecated": (0, U32), "InterruptTime": (8, st("_KSYSTEM_TIME")),
        "SystemTime": (0x14, st("_KSYSTEM_TIME")), "TimeZoneBias": (0x20, st("_KSYSTEM_TIME")),
        "ImageNumberLow": (0x2C, U16), "ImageNumberHigh": (0x2E, U16),
        "NtSystemRoot": (0x30, arr(260, WCHAR)), "NtBuildNumber": (0x260, U32),
        "NtProductType": (0x264, en("_NT_PRODUCT_TYPE")), "ProductTypeIsValid": (0x268, U8),
        "NtMajorVersion": (0x26C, U32), "NtMinorVersion": (0x270, U32)}),
    "_PEB": ("struct", 0x7D0, {
        "InheritedAddressSpace": (0, U8), "ReadImageFileExecOptions": (1, U8),
        "BeingDebugged": (2, U8), "BitField": (3, U8), "Mutant": (8, PVOID),
        "ImageBaseAddress": (0x10, PVOID), "Ldr": (0x18, ptr(st("_PEB_LDR_DATA"))),
        "ProcessParameters": (0x20, ptr(st("_RTL_USER_PROCESS_PARAMETERS"))),
        "CrossProcessFlags": (0x50, U32),
        "ProcessInJob": (0x50, bits(0, 1)), "ProcessInitializing": (0x50, bits(1, 1)),
        "ProcessUsingVEH": (0x50, bits(2, 1)), "ProcessUsingVCH": (0x50, bits(3, 1)),
        "ProcessUsingFTH": (0x50, bits(4, 1)), "ProcessPreviouslyThrottled": (0x50, bits(5, 1)),
        "ProcessCurrentlyThrottled": (0x50, bits(6, 1)),
        "ProcessImagesHotPatched": (0x50, bits(7, 1)), "ReservedBits0": (0x50, bits(8, 24)),
        "OSMajorVersion": (0x118, U32), "OSMinorVersion": (0x11C, U32),
        "OSBuildNumber": (0x120, U16), "SessionId": (0x2C0, U32)}),
    "_PEB_LDR_DATA": ("struct", 0x58, {
        "Length": (0, U32), "Initialized": (4, U8), "SsHandle": (8, PVOID),
        "InLoadOrderModuleList": (0x10, st("_LIST_ENTRY")),
        "InMemoryOrderModuleList": (0x20, st("_LIST_ENTRY")),
        "InInitializationOrderModuleList": (0x30, st("_LIST_ENTRY")),
        "EntryInProgress": (0x40, PVOID), "ShutdownInProgress": (0x48, U8),
        "ShutdownThreadId": (0x50, PVOID)}),
    "_RTL_USER_PROCESS_PARAMETERS": ("struct", 0x448, {
        "MaximumLength": (0, U32), "Length": (4, U32), "Flags": (8, U32),
        "CurrentDirectory": (0x38, st("_UNICODE_STRING")),
        "DllPath": (0x50, st("_UNICODE_STRING")), "ImagePathName": (0x60, st("_UNICODE_STRING")),
        "CommandLine": (0x70, st("_UNICODE_STRING")), "Environment": (0x80, PVOID),
        "EnvironmentSize": (0x3F0, U64)}),
    "_LDR_DATA_TABLE_ENTRY": ("struct", 0x138, {
        "InLoadOrderLinks": (0, st("_LIST_ENTRY")), "InMemoryOrderLinks": (0x10, st("_LIST_ENTRY")),
        "InInitializationOrderLinks": (0x20, st("_LIST_ENTRY")),
        "InProgressLinks": (0x20, st("_LIST_ENTRY")),
        "DllBase": (0x30, PVOID), "EntryPoint": (0x38, PVOID), "SizeOfImage": (0x40, U32),
        "FullDllName": (0x48, st("_UNICODE_STRING")), "BaseDllName": (0x58, st("_UNICODE_STRING")),
        "Flags": (0x68, U32), "PackagedBinary": (0x68, bits(0, 1)),
        "ImageDll": (0x68, bits(2, 1)), "LoadNotificationsSent": (0x68, bits(3, 1)),
        "ProcessStaticImport": (0x68, bits(5, 1)), "ObsoleteLoadCount": (0x6C, U16),
        "TlsIndex": (0x6E, U16), "HashLinks": (0x70, st("_LIST_ENTRY")),
        "TimeDateStamp": (0x80, U32), "DdagNode": (0x98, PVOID),
        "NodeModuleLink": (0xA0, st("_LIST_ENTRY")), "ParentDllBase": (0xB8, PVOID),
        "BaseAddressIndexNode": (0xC8, st("_RTL_BALANCED_NODE")),
        "MappingInfoIndexNode": (0xE0, st("_RTL_BALANCED_NODE")), "OriginalBase": (0xF8, U64),
        "LoadTime": (0x100, un("_LARGE_INTEGER")), "BaseNameHashValue": (0x108, U32),
        "LoadReason": (0x10C, en("_LDR_DLL_LOAD_REASON")), "ImplicitPathOptions": (0x110, U32),
        "ReferenceCount": (0x114, U32), "DependentLoadFlags": (0x118, U32),
        "SigningLevel": (0x11C, U8), "CheckSum": (0x120, U32),
        "ActivePatchImageBase": (0x128, PVOID),
        "HotPatchState": (0x130, en("_LDR_HOT_PATCH_STATE"))}),
    "_KLDR_DATA_TABLE_ENTRY": ("struct", 0xA0, {
        "InLoadOrderLinks": (0, st("_LIST_ENTRY")), "ExceptionTable": (0x10, PVOID),
        "ExceptionTableSize": (0x18, U32), "GpValue": (0x20, PVOID),
        "NonPagedDebugInfo": (0x28, PVOID), "DllBase": (0x30, PVOID),
        "EntryPoint": (0x38, PVOID), "SizeOfImage": (0x40, U32),
        "FullDllName": (0x48, st("_UNICODE_STRING")), "BaseDllName": (0x58, st("_UNICODE_STRING")),
        "Flags": (0x68, U32), "LoadCount": (0x6C, U16), "SectionPointer": (0x70, PVOID),
        "CheckSum": (0x78, U32), "CoverageSectionSize": (0x7C, U32),
        "CoverageSection": (0x80, PVOID), "LoadedImports": (0x88, PVOID),
        "SizeOfImageNotRounded": (0x98, U32), "TimeDateStamp": (0x9C, U32)}),
    "_MMVAD_FLAGS": ("struct", 4, {
        "Lock": (0, bits(0, 1)), "LockContended": (0, bits(1, 1)),
        "DeleteInProgress": (0, bits(2, 1)), "NoChange": (0, bits(3, 1)),
        "VadType": (0, bits(4, 3)), "Protection": (0, bits(7, 5)),
        "PreferredNode": (0, bits(12, 6)), "PageSize": (0, bits(18, 2)),
        "PrivateMemory": (0, bits(20, 1))}),
    "_MMVAD_FLAGS1": ("struct", 4, {"CommitCharge": (0, bits(0, 31)),
                                    "MemCommit": (0, bits(31, 1))}),
    "_MMVAD_FLAGS2": ("struct", 4, {"FileOffset": (0, bits(0, 24)),
                                    "Large": (0, bits(24, 1)),
                                    "TrimBehind": (0, bits(25, 1)),
                                    "Inherit": (0, bits(26, 1)),
                                    "NoValidationNeeded": (0, bits(27, 1)),
                                    "PrivateDemandZero": (0, bits(28, 1))}),
    "__vad_u": ("union", 4, {"LongFlags": (0, U32), "VadFlags": (0, st("_MMVAD_FLAGS"))}),
    "__vad_u1": ("union", 4, {"LongFlags1": (0, U32), "VadFlags1": (0, st("_MMVAD_FLAGS1"))}),
    "__vad_u2": ("union", 4, {"LongFlags2": (0, U32), "VadFlags2": (0, st("_MMVAD_FLAGS2"))}),
    "_MMVAD_SHORT": ("struct", 0x40, {
        "VadNode": (0, st("_RTL_BALANCED_NODE")), "NextVad": (0, ptr(st("_MMVAD_SHORT"))),
        "StartingVpn": (0x18, U32), "EndingVpn": (0x1C, U32),
        "StartingVpnHigh": (0x20, U8), "EndingVpnHigh": (0x21, U8),
        "CommitChargeHigh": (0x22, U8), "SpareNT64VadUChar": (0x23, U8),
        "ReferenceCount": (0x24, I32), "PushLock": (0x28, U64),
        "u": (0x30, un("__vad_u")), "u1": (0x34, un("__vad_u1")), "EventList": (0x38, PVOID)}),
    "_MMVAD": ("struct", 0x88, {
        "Core": (0, st("_MMVAD_SHORT")), "u2": (0x40, un("__vad_u2")),
        "Subsection": (0x48, ptr(st("_SUBSECTION"))), "FirstPrototypePte": (0x50, PVOID),
        "LastContiguousPte": (0x58, PVOID), "ViewLinks": (0x60, st("_LIST_ENTRY")),
        "VadsProcess": (0x70, ptr(st("_EPROCESS"))),
        "FileObject": (0x80, ptr(st("_FILE_OBJECT")))}),
    "_SUBSECTION": ("struct", 0x38, {
        "ControlArea": (0, ptr(st("_CONTROL_AREA"))), "SubsectionBase": (8, PVOID),
        "NextSubsection": (0x10, ptr(st("_SUBSECTION"))), "PtesInSubsection": (0x2C, U32)}),
    "_SEGMENT": ("struct", 0x48, {"ControlArea": (0, ptr(st("_CONTROL_AREA"))),
                                  "TotalNumberOfPtes": (8, U32), "SizeOfSegment": (0x18, U64)}),
    "_CONTROL_AREA": ("struct", 0x80, {
        "Segment": (0, ptr(st("_SEGMENT"))), "ListHead": (8, st("_LIST_ENTRY")),
        "NumberOfSectionReferences": (0x18, U64), "NumberOfPfnReferences": (0x20, U64),
        "NumberOfMappedViews": (0x28, U64), "NumberOfUserReferences": (0x30, U64),
        "LongFlags": (0x38, U32), "FilePointer": (0x40, st("_EX_FAST_REF"))}),
    "_FILE_OBJECT": ("struct", 0xD8, {
        "Type": (0, I16), "Size": (2, I16), "DeviceObject": (8, ptr(st("_DEVICE_OBJECT"))),
        "SectionObjectPointer": (0x28, PVOID), "ReadAccess": (0x4A, U8),
        "WriteAccess": (0x4B, U8), "DeleteAccess": (0x4C, U8), "SharedRead": (0x4D, U8),
        "SharedWrite": (0x4E, U8), "SharedDelete": (0x4F, U8), "Flags": (0x50, U32),
        "FileName": (0x58, st("_UNICODE_STRING")),
        "CurrentByteOffset": (0x68, un("_LARGE_INTEGER"))}),
    "_IMAGE_DOS_HEADER": ("struct", 0x40, {"e_magic": (0, U16), "e_lfanew": (0x3C, I32)}),
    "_DBGKD_GET_VERSION64": ("struct", 0x28, {
        "MajorVersion": (0, U16), "MinorVersion": (2, U16), "ProtocolVersion": (4, U8),
        "KdSecondaryVersion": (5, U8), "Flags": (6, U16), "MachineType": (8, U16),
        "MaxPacketType": (0xA, U8), "MaxStateChange": (0xB, U8), "MaxManipulate": (0xC, U8),
        "Simulation": (0xD, U8), "KernBase": (0x10, U64), "PsLoadedModuleList": (0x18, U64),
        "DebuggerDataList": (0x20, U64)}),
}

# Structures Volatility's Windows symbol class binds helper classes to; never instantiated here.
OPAQUE = {
    "_ETHREAD": 0x8A0, "_KTHREAD": 0x4C0, "_ERESOURCE": 0x68, "_TOKEN": 0x4A0,
    "_OBJECT_HEADER": 0x38, "_DEVICE_OBJECT": 0x150, "_CM_KEY_BODY": 0x50, "_CMHIVE": 0x1000,
    "_CM_KEY_NODE": 0x50, "_CM_KEY_VALUE": 0x18, "_HMAP_ENTRY": 0x28, "_KMUTANT": 0x38,
    "_DRIVER_OBJECT": 0x150, "_OBJECT_SYMBOLIC_LINK": 0x30, "_SHARED_CACHE_MAP": 0x200,
    "_VACB": 0x28, "_POOL_TRACKER_BIG_PAGES": 0x18, "_KTIMER": 0x40, "_POOL_HEADER": 0x10,
}

ENUMS = {
    "_NT_PRODUCT_TYPE": {"NtProductWinNt": 1, "NtProductLanManNt": 2, "NtProductServer": 3},
    "_LDR_DLL_LOAD_REASON": {
        "LoadReasonStaticDependency": 0, "LoadReasonStaticForwarderDependency": 1,
        "LoadReasonDynamicForwarderDependency": 2, "LoadReasonDelayloadDependency": 3,
        "LoadReasonDynamicLoad": 4, "LoadReasonAsImageLoad": 5, "LoadReasonAsDataLoad": 6,
        "LoadReasonEnclavePrimary": 7, "LoadReasonEnclaveDependency": 8,
        "LoadReasonPatchImage": 9, "LoadReasonUnknown": -1},
    "_LDR_HOT_PATCH_STATE": {
        "LdrHotPatchBaseImage": 0, "LdrHotPatchNotApplied": 1, "LdrHotPatchAppliedReverse": 2,
        "LdrHotPatchAppliedForward": 3, "LdrHotPatchFailedToPatch": 4, "LdrHotPatchStateMax": 5},
}

# Kernel globals the scenario places in the kernel image's data section (RVA filled by the builder).
# (name, bytes reserved in the kernel image's .data section)
KERNEL_GLOBALS = (("PsActiveProcessHead", 16), ("PsLoadedModuleList", 16),
                  ("MmProtectToValue", 128), ("MmSystemRangeStart", 8),
                  ("PsInitialSystemProcess", 8), ("NtBuildNumber", 4), ("KeNumberProcessors", 4),
                  ("KdVersionBlock", 0x28),
                  # Windows 10+ keeps the KDBG block encoded: present, but no "KDBG" tag
                  ("KdDebuggerDataBlock", 0x340))

# MmProtectToValue: the kernel's 5-bit VAD protection → PAGE_* constant table.
MM_PROTECT_TO_VALUE = [0x01, 0x02, 0x20, 0x40, 0x08, 0x04, 0x80, 0x80] * 4

_SIZES = {"unsigned char": 1, "unsigned short": 2, "unsigned long": 4, "unsigned long long": 8,
          "short": 2, "long": 4, "long long": 8, "int": 4, "wchar": 2, "char": 1}


def type_size(t: Type) -> int:
    kind = t["kind"]
    if kind == "base":
        return _SIZES[t["name"]]
    if kind == "pointer":
        return 8
    if kind == "array":
        return t["count"] * type_size(t["subtype"])
    if kind in ("struct", "union"):
        return STRUCTS[t["name"]][1] if t["name"] in STRUCTS else OPAQUE[t["name"]]
    if kind == "enum":
        return 4
    if kind == "bitfield":
        return type_size(t["type"])
    raise ValueError(kind)


def resolve(type_name: str, path: str) -> tuple[int, Type]:
    """Offset and type of a dotted member path, e.g. `Core.u.VadFlags.Protection`."""
    offset, current = 0, st(type_name)
    for part in path.split("."):
        if current["kind"] not in ("struct", "union"):
            raise KeyError(f"{type_name}.{path}: {part} is not inside a structure")
        fields = STRUCTS[current["name"]][2]
        off, current = fields[part]
        offset += off
    return offset, current


def build_isf(guid: str, age: int, symbols: dict[str, int], build: int) -> dict[str, Any]:
    user_types: dict[str, Any] = {}
    for name, (kind, size, fields) in STRUCTS.items():
        user_types[name] = {"kind": kind, "size": size, "fields": {
            f: {"offset": off, "type": t} for f, (off, t) in fields.items()}}
    for name, size in OPAQUE.items():
        user_types[name] = {"kind": "struct", "size": size, "fields": {}}
    return {
        "metadata": {
            "format": "6.2.0",
            "producer": {"name": "hpforensics samples/build_memimage.py", "version": "1.0.0"},
            "windows": {"pdb": {"GUID": guid, "age": age, "database": "ntkrnlmp.pdb",
                                "machine_type": 0x8664},
                        "pe": {"major": 10, "minor": 0, "revision": build, "build": 2033}},
        },
        "base_types": {n: {"kind": k, "size": s, "signed": sg, "endian": "little"}
                       for n, (k, s, sg) in BASE_TYPES.items()},
        "user_types": user_types,
        "enums": {n: {"size": 4, "base": "long", "constants": c} for n, c in ENUMS.items()},
        "symbols": {n: {"address": rva} for n, rva in sorted(symbols.items())},
    }
