"""Windows live backend: documented read-only APIs through ctypes, loaded only when used.

OpenProcess asks for PROCESS_QUERY_(LIMITED_)INFORMATION | PROCESS_VM_READ and nothing more:
no write, no suspend, no debug. Images come from VirtualQueryEx (every MEM_IMAGE allocation,
loader-listed or not, hotpatch images included; GetMappedFileNameW names them), cross-checked
with EnumProcessModulesEx and the target's own loader entries (PEB -> Ldr, native and WoW64),
whose HotPatchState / ActivePatchImageBase are reported beside what the bytes show.
QueryWorkingSetEx says which image pages are still shared with the section: those are not read.

Importing this module on Linux is safe (no ctypes.windll at import); the structures and parsers
live in hpforensics.live.winstructs and are tested there.
"""
from __future__ import annotations

import ctypes
import logging
import os
from typing import Sequence

from hpforensics.live.winstructs import (
    LAYOUT,
    MEM_COMMIT,
    MEM_IMAGE,
    MEM_MAPPED,
    BasicInfo,
    LoaderEntry,
    allocation_end,
    group_images,
    nt_to_dos_path,
    parse_working_set,
    perms,
    unchanged_from_working_set,
    walk_loader,
)
from hpforensics.reference.headers import mapped_size_of_image
from hpforensics.live.space import (
    AccessDenied,
    LiveBackend,
    LiveSpace,
    OsPatchRecord,
    ProcessGone,
    ProcessInfo,
    Region,
)
from hpforensics.space import PAGE_SIZE, MappedImage, ReadResult

log = logging.getLogger(__name__)

PROCESS_QUERY_INFORMATION = 0x0400
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
PROCESS_VM_READ = 0x0010
TH32CS_SNAPPROCESS = 0x2
LIST_MODULES_ALL = 0x3
ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER = 5, 87
ProcessBasicInformation, ProcessWow64Information = 0, 26
HOT_PATCH_QUERY_ACTIVE_PATCHES = 6  # NtManageHotPatch class (phnt ntexapi.h)
MAX_PATH_CHARS = 32768
INVALID_HANDLE_VALUE = (1 << 64) - 1  # as a c_void_p restype returns it (64-bit Python)


class _MBI64(ctypes.Structure):
    _fields_ = [("BaseAddress", ctypes.c_uint64), ("AllocationBase", ctypes.c_uint64),
                ("AllocationProtect", ctypes.c_uint32), ("PartitionId", ctypes.c_uint16),
                ("RegionSize", ctypes.c_uint64), ("State", ctypes.c_uint32),
                ("Protect", ctypes.c_uint32), ("Type", ctypes.c_uint32)]


class _ProcessEntry32W(ctypes.Structure):
    _fields_ = [("dwSize", ctypes.c_uint32), ("cntUsage", ctypes.c_uint32),
                ("th32ProcessID", ctypes.c_uint32), ("th32DefaultHeapID", ctypes.c_size_t),
                ("th32ModuleID", ctypes.c_uint32), ("cntThreads", ctypes.c_uint32),
                ("th32ParentProcessID", ctypes.c_uint32), ("pcPriClassBase", ctypes.c_int32),
                ("dwFlags", ctypes.c_uint32), ("szExeFile", ctypes.c_wchar * 260)]


class _ProcessBasicInformation(ctypes.Structure):
    _fields_ = [("ExitStatus", ctypes.c_ssize_t), ("PebBaseAddress", ctypes.c_void_p),
                ("AffinityMask", ctypes.c_size_t), ("BasePriority", ctypes.c_ssize_t),
                ("UniqueProcessId", ctypes.c_size_t),
                ("InheritedFromUniqueProcessId", ctypes.c_size_t)]


class _Win32:
    """The DLLs, loaded on first use (never at import)."""

    def __init__(self) -> None:
        self.k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        self.psapi = ctypes.WinDLL("psapi", use_last_error=True)  # type: ignore[attr-defined]
        self.ntdll = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined]
        self.k32.OpenProcess.restype = ctypes.c_void_p
        self.k32.CreateToolhelp32Snapshot.restype = ctypes.c_void_p
        self.k32.VirtualQueryEx.restype = ctypes.c_size_t
        self.k32.VirtualQueryEx.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                            ctypes.c_void_p, ctypes.c_size_t]
        self.k32.ReadProcessMemory.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                               ctypes.c_void_p, ctypes.c_size_t,
                                               ctypes.POINTER(ctypes.c_size_t)]
        self.psapi.GetMappedFileNameW.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                  ctypes.c_wchar_p, ctypes.c_uint32]
        self.psapi.QueryWorkingSetEx.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                 ctypes.c_uint32]
        self.ntdll.NtQueryInformationProcess.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                                         ctypes.c_void_p, ctypes.c_uint32,
                                                         ctypes.c_void_p]
        # 64-bit handles and pointers must not go through ctypes' default C int
        vp, u32 = ctypes.c_void_p, ctypes.c_uint32
        for fn, args in ((self.k32.Process32FirstW, [vp, vp]), (self.k32.Process32NextW, [vp, vp]),
                         (self.k32.CloseHandle, [vp]),
                         (self.psapi.EnumProcessModulesEx, [vp, vp, u32, vp, u32]),
                         (self.psapi.EnumDeviceDrivers, [vp, u32, vp]),
                         (self.psapi.GetDeviceDriverBaseNameW, [vp, ctypes.c_wchar_p, u32])):
            fn.argtypes = args
        self.devices = self._dos_devices()

    def _dos_devices(self) -> dict[str, str]:
        out = {}
        buf = ctypes.create_unicode_buffer(1024)
        for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            if self.k32.QueryDosDeviceW(f"{letter}:", buf, len(buf)):
                out[buf.value] = f"{letter}:"
        return out


_API: _Win32 | None = None


def api() -> _Win32:
    global _API
    if _API is None:
        _API = _Win32()
    return _API


class WindowsProcessSpace(LiveSpace):
    pid: int  # always a process

    def __init__(self, proc: ProcessInfo, source: str) -> None:
        self.pid, self.process, self.source = proc.pid, proc.name, source
        self.w = api()
        self.handle = None
        for access in (PROCESS_QUERY_INFORMATION | PROCESS_VM_READ,
                       PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_VM_READ):
            self.handle = self.w.k32.OpenProcess(access, False, proc.pid)
            if self.handle:
                break
        if not self.handle:
            err = ctypes.get_last_error()  # type: ignore[attr-defined]
            if err == ERROR_INVALID_PARAMETER:
                raise ProcessGone(proc.pid)
            raise AccessDenied(f"OpenProcess error {err}")
        self.exe = proc.exe
        self._infos = self._query_regions()
        names: dict[int, str] = {}  # one GetMappedFileNameW per image/mapped-file allocation

        def name_of(info: BasicInfo) -> str:
            if info.type not in (MEM_IMAGE, MEM_MAPPED):
                return ""
            if info.allocation_base not in names:
                names[info.allocation_base] = self._mapped_name(info.allocation_base)
            return names[info.allocation_base]

        self._regions = [Region(i.base, i.base + i.size, perms(i.protect, True), 0,
                                name_of(i), "", 0, False)
                         for i in self._infos if i.state == MEM_COMMIT]
        self.loader = self._loader_entries()
        self._listed = self._enum_modules()
        self._images = self._build_images()

    # -- queries ------------------------------------------------------------------------------
    def _query_regions(self) -> list[BasicInfo]:
        out, address, mbi = [], 0, _MBI64()
        while self.w.k32.VirtualQueryEx(self.handle, ctypes.c_void_p(address), ctypes.byref(mbi),
                                        ctypes.sizeof(mbi)):
            out.append(BasicInfo(mbi.BaseAddress, mbi.AllocationBase or 0, mbi.RegionSize,
                                 mbi.State, mbi.Protect, mbi.Type))
            address = mbi.BaseAddress + mbi.RegionSize
            if mbi.RegionSize == 0 or address >= 1 << 47:
                break
        return out

    def _mapped_name(self, base: int) -> str:
        buf = ctypes.create_unicode_buffer(MAX_PATH_CHARS)
        n = self.w.psapi.GetMappedFileNameW(self.handle, ctypes.c_void_p(base), buf, len(buf))
        return nt_to_dos_path(buf.value[:n], self.w.devices) if n else ""

    def _peb(self, info_class: int) -> int:
        out = ctypes.c_uint64(0) if info_class == ProcessWow64Information else \
            _ProcessBasicInformation()
        status = self.w.ntdll.NtQueryInformationProcess(self.handle, info_class,
                                                        ctypes.byref(out), ctypes.sizeof(out),
                                                        None)
        if status != 0:
            return 0
        if isinstance(out, ctypes.c_uint64):  # ProcessWow64Information: the PEB32 address
            return out.value
        return out.PebBaseAddress or 0

    def _loader_entries(self) -> list[LoaderEntry]:
        entries = []
        for info_class, bits in ((ProcessBasicInformation, 64), (ProcessWow64Information, 32)):
            peb = self._peb(info_class)
            if peb:
                entries += walk_loader(self.read_exact, peb, bits)
        return entries

    def _enum_modules(self) -> set[int]:
        """Module bases EnumProcessModulesEx lists (native and WoW64: LIST_MODULES_ALL)."""
        needed = ctypes.c_uint32(0)
        arr = (ctypes.c_void_p * 4096)()
        if not self.w.psapi.EnumProcessModulesEx(self.handle, arr, ctypes.sizeof(arr),
                                                 ctypes.byref(needed), LIST_MODULES_ALL):
            return set()
        n = min(needed.value // ctypes.sizeof(ctypes.c_void_p), len(arr))
        return {b for b in arr[:n] if b}

    def _build_images(self) -> list[tuple[MappedImage, list[Region]]]:
        by_base = {e.base: e for e in self.loader}
        out = []
        for base, size, runs in group_images(self._infos):
            entry = by_base.get(base)
            path = entry.full_name if entry and entry.full_name else self._mapped_name(base)
            # On 24H2 the image allocation runs past SizeOfImage (extension pages): the image
            # is what the header says, the rest of the allocation is its extension.
            mapped = allocation_end(self._infos, base) - base
            header_size = mapped_size_of_image(self.read(base, 0x400).data)
            if header_size is not None and header_size < mapped:
                size = (header_size + 0xFFF) & ~0xFFF
            image = MappedImage(
                base=base, size=size, path=path, mapped_size=mapped,
                name=path.replace("/", "\\").rsplit("\\", 1)[-1],
                in_loader_list=entry is not None or base in self._listed,
                hotpatch_state=entry.hotpatch_state if entry else None,
                active_patch_base=(entry.active_patch_base or None) if entry else None,
                is_patch_image=bool(entry and entry.is_patch_image),
                timestamp=entry.timestamp if entry else None,
                checksum=entry.checksum if entry else None,
            )
            regions = [Region(r.base, r.base + r.size, perms(r.protect, True), r.base - base,
                              path, "", 0, False) for r in runs]
            out.append((image, regions))
        return out

    def os_patch_records(self) -> list[OsPatchRecord]:
        records = [OsPatchRecord(self.source, self.pid, e.base_name, e.base, e.hotpatch_state,
                                 e.active_patch_base or None)
                   for e in self.loader if e.hotpatch_state or e.active_patch_base]
        return records + query_active_patches(self)

    # -- AddressSpace / LiveSpace -------------------------------------------------------------
    def images(self) -> Sequence[MappedImage]:
        return [i for i, _ in self._images]

    def image_regions(self, image: MappedImage) -> Sequence[Region]:
        return next((regs for img, regs in self._images if img == image), [])

    def regions(self) -> Sequence[Region]:
        return self._regions

    def read(self, address: int, size: int) -> ReadResult:
        first = address & ~(PAGE_SIZE - 1)
        n_pages = (address + size - first + PAGE_SIZE - 1) // PAGE_SIZE if size else 0
        buf = ctypes.create_string_buffer(size)
        got = ctypes.c_size_t(0)
        if self.w.k32.ReadProcessMemory(self.handle, ctypes.c_void_p(address), buf, size,
                                        ctypes.byref(got)) and got.value == size:
            return ReadResult(address, buf.raw, (True,) * n_pages)
        out, present = bytearray(size), []
        for i in range(n_pages):
            lo = max(address, first + i * PAGE_SIZE)
            hi = min(address + size, first + (i + 1) * PAGE_SIZE)
            page = ctypes.create_string_buffer(hi - lo)
            ok = bool(self.w.k32.ReadProcessMemory(self.handle, ctypes.c_void_p(lo), page,
                                                   hi - lo, ctypes.byref(got)))
            if ok:
                out[lo - address:hi - address] = page.raw
            present.append(ok)
        return ReadResult(address, bytes(out), tuple(present))

    def unchanged_pages(self, start: int, end: int) -> list[bool] | None:
        cls = LAYOUT[64]["WORKING_SET_EX_INFORMATION"]
        n = (end - start) // PAGE_SIZE
        array = (cls * n)()
        for i in range(n):
            array[i].VirtualAddress = start + i * PAGE_SIZE
        if not self.w.psapi.QueryWorkingSetEx(self.handle, array, ctypes.sizeof(array)):
            return None
        return unchanged_from_working_set(parse_working_set(bytes(array), 64))

    def open_file(self, region: Region) -> tuple[int | None, str]:
        try:
            return os.open(region.path, os.O_RDONLY | getattr(os, "O_BINARY", 0)), "path"
        except OSError as exc:
            return None, f"{region.path}: {exc.strerror}"

    def close(self) -> None:
        if self.handle:
            self.w.k32.CloseHandle(ctypes.c_void_p(self.handle))
            self.handle = None


def query_active_patches(space: WindowsProcessSpace) -> list[OsPatchRecord]:
    """NtManageHotPatch(QueryActivePatches) for one process, where the caller may use it
    (administrators on hotpatch-enabled systems); an empty list otherwise. The buffer layout is
    phnt's reverse-engineered MANAGE_HOT_PATCH_QUERY_ACTIVE_PATCHES (Version 2)."""
    fn = getattr(space.w.ntdll, "NtManageHotPatch", None)
    if fn is None:
        return []

    class Query(ctypes.Structure):
        _fields_ = [("Version", ctypes.c_uint32), ("ProcessHandle", ctypes.c_void_p),
                    ("PatchCount", ctypes.c_uint32), ("PatchPathStrings", ctypes.c_void_p),
                    ("BaseInfos", ctypes.c_void_p), ("PatchSequenceNumbers", ctypes.c_void_p)]

    q = Query(2, space.handle, 0, None, None, None)
    fn(HOT_PATCH_QUERY_ACTIVE_PATCHES, ctypes.byref(q), ctypes.sizeof(q), None)
    count = q.PatchCount
    if not count or count > 4096:
        return []
    us_cls = LAYOUT[64]["UNICODE_STRING"]
    names = (us_cls * count)()
    buffers = [ctypes.create_unicode_buffer(MAX_PATH_CHARS // 8) for _ in range(count)]
    for us, buf in zip(names, buffers):
        us.Length, us.MaximumLength = 0, ctypes.sizeof(buf) - 2
        us.Buffer = ctypes.addressof(buf)
    infos = (ctypes.c_uint32 * (2 * count))()
    seqs = (ctypes.c_uint32 * count)()
    q = Query(2, space.handle, count, ctypes.addressof(names), ctypes.addressof(infos),
              ctypes.addressof(seqs))
    if fn(HOT_PATCH_QUERY_ACTIVE_PATCHES, ctypes.byref(q), ctypes.sizeof(q), None) != 0:
        return []
    out = []
    for i in range(min(count, q.PatchCount)):
        path = ctypes.wstring_at(names[i].Buffer, names[i].Length // 2)
        # HOT_PATCH_IMAGE_INFO {CheckSum, TimeDateStamp} names the base image, not its address
        base_info = f"base checksum={infos[2 * i]:#x} timestamp={infos[2 * i + 1]:#x}"
        out.append(OsPatchRecord(space.source, space.pid, base_info, None, None, None, path,
                                 seqs[i], "NtManageHotPatch"))
    return out


class WindowsBackend(LiveBackend):
    name = "windows"

    def processes(self) -> list[ProcessInfo]:
        w = api()
        snap = w.k32.CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0)
        if not snap or snap == INVALID_HANDLE_VALUE:
            err = ctypes.get_last_error()  # type: ignore[attr-defined]
            raise AccessDenied(f"CreateToolhelp32Snapshot error {err}")
        entry = _ProcessEntry32W()
        entry.dwSize = ctypes.sizeof(entry)
        out = []
        ok = w.k32.Process32FirstW(ctypes.c_void_p(snap), ctypes.byref(entry))
        while ok:
            if entry.th32ProcessID:  # 0 is the idle process
                out.append(ProcessInfo(entry.th32ProcessID, entry.szExeFile))
            ok = w.k32.Process32NextW(ctypes.c_void_p(snap), ctypes.byref(entry))
        w.k32.CloseHandle(ctypes.c_void_p(snap))
        return sorted(out, key=lambda p: p.pid)

    def open(self, proc: ProcessInfo) -> WindowsProcessSpace:
        return WindowsProcessSpace(proc, self.source)

    def kernel_modules(self) -> list[str]:
        w = api()
        needed = ctypes.c_uint32(0)
        w.psapi.EnumDeviceDrivers(None, 0, ctypes.byref(needed))
        count = needed.value // ctypes.sizeof(ctypes.c_void_p)
        bases = (ctypes.c_void_p * max(count, 1))()
        if not w.psapi.EnumDeviceDrivers(bases, ctypes.sizeof(bases), ctypes.byref(needed)):
            return []
        names = []
        buf = ctypes.create_unicode_buffer(260)
        for base in bases[:count]:
            if base and w.psapi.GetDeviceDriverBaseNameW(ctypes.c_void_p(base), buf, len(buf)):
                names.append(buf.value)
        return names


__all__ = ["WindowsBackend", "WindowsProcessSpace"]
