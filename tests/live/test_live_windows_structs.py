"""The Windows backend's pure parts, on Linux: structure offsets, the PEB/LDR walk through a
fake reader, working-set bits, path conversion, image grouping, and import safety."""
from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from hpforensics.live.winstructs import (
    MEM_COMMIT,
    MEM_IMAGE,
    BasicInfo,
    HotPatchState,
    group_images,
    nt_to_dos_path,
    offset_of,
    parse_working_set,
    unchanged_from_working_set,
    walk_loader,
)

# Offsets from the public symbols of Windows 11 24H2 ntdll (x64) and the x86 layout phnt gives.
LDR_OFFSETS = {
    64: {"DllBase": 0x30, "SizeOfImage": 0x40, "FullDllName": 0x48, "BaseDllName": 0x58,
         "TimeDateStamp": 0x80, "OriginalBase": 0xF8, "LoadReason": 0x10C, "CheckSum": 0x120,
         "ActivePatchImageBase": 0x128, "HotPatchState": 0x130},
    32: {"DllBase": 0x18, "SizeOfImage": 0x20, "FullDllName": 0x24, "BaseDllName": 0x2C,
         "TimeDateStamp": 0x44, "LoadReason": 0x94, "CheckSum": 0xA8,
         "ActivePatchImageBase": 0xAC, "HotPatchState": 0xB0},
}
PEB_LDR = {64: 0x18, 32: 0x0C}
LDR_LIST = {64: 0x10, 32: 0x0C}


@pytest.mark.parametrize("bits", [64, 32])
def test_structure_offsets(bits):
    for field, off in LDR_OFFSETS[bits].items():
        assert offset_of(bits, "LDR_DATA_TABLE_ENTRY", field) == off, field
    assert offset_of(bits, "PEB", "Ldr") == PEB_LDR[bits]
    assert offset_of(bits, "PEB", "CrossProcessFlags") == (0x50 if bits == 64 else 0x28)
    assert offset_of(bits, "PEB_LDR_DATA", "InLoadOrderModuleList") == LDR_LIST[bits]


class FakeMemory:
    """A sparse address space built with struct.pack at the offsets above (not the ctypes
    declarations under test), read the way the backend reads the target."""

    def __init__(self) -> None:
        self.blocks: dict[int, bytearray] = {}

    def put(self, address: int, data: bytes) -> None:
        self.blocks[address] = bytearray(data)

    def patch(self, address: int, offset: int, fmt: str, *values) -> None:
        struct.pack_into(fmt, self.blocks[address], offset, *values)

    def read(self, address: int, size: int) -> bytes | None:
        for base, data in self.blocks.items():
            if base <= address and address + size <= base + len(data):
                return bytes(data[address - base : address - base + size])
        return None


def build_process(bits: int, modules: list[dict], loop: bool = False) -> tuple[FakeMemory, int]:
    ptr = "<Q" if bits == 64 else "<I"
    us = "<HH4xQ" if bits == 64 else "<HHI"
    entry_size = 0x138 if bits == 64 else 0xB8
    mem = FakeMemory()
    peb, ldr = 0x7FF0_0000, 0x7FF1_0000
    mem.put(peb, bytes(0x100))
    mem.patch(peb, PEB_LDR[bits], ptr, ldr)
    mem.put(ldr, bytes(0x40))
    head = ldr + LDR_LIST[bits]
    addrs = [0x10_0000 + i * 0x1000 for i in range(len(modules))]
    links = addrs + [head]
    mem.patch(ldr, LDR_LIST[bits], ptr, addrs[0])
    o = LDR_OFFSETS[bits]
    for i, (addr, m) in enumerate(zip(addrs, modules)):
        mem.put(addr, bytes(entry_size))
        mem.patch(addr, 0, ptr, addrs[i] if loop and i == len(addrs) - 1 else links[i + 1])
        mem.patch(addr, o["DllBase"], ptr, m["base"])
        mem.patch(addr, o["SizeOfImage"], "<I", m["size"])
        for field, text, where in (("FullDllName", m["path"], 0x800), ("BaseDllName",
                                   m["path"].rsplit("\\", 1)[-1], 0xC00)):
            raw = text.encode("utf-16-le")
            mem.put(addr + where, raw)
            mem.patch(addr, o[field], us, len(raw), len(raw) + 2, addr + where)
        mem.patch(addr, o["TimeDateStamp"], "<I", m.get("timestamp", 0))
        mem.patch(addr, o["LoadReason"], "<i", m.get("reason", 4))
        mem.patch(addr, o["CheckSum"], "<I", m.get("checksum", 0))
        mem.patch(addr, o["ActivePatchImageBase"], ptr, m.get("patch", 0))
        mem.patch(addr, o["HotPatchState"], "<i", m.get("state", 0))
    return mem, peb


MODULES = [
    {"base": 0x40_0000, "size": 0x2000, "path": "C:\\Windows\\app.exe"},
    {"base": 0x7711_0000, "size": 0x1F_0000, "path": "C:\\Windows\\System32\\ntdll.dll",
     "timestamp": 0x1234_5678, "checksum": 0x1F_ABCD, "state": int(HotPatchState.APPLIED_FORWARD),
     "patch": 0x7722_0000},
    {"base": 0x7722_0000, "size": 0x3_0000, "path": "C:\\Windows\\System32\\hpntdll.dll",
     "reason": 9},
]


@pytest.mark.parametrize("bits", [64, 32])
def test_walk_loader_reads_hotpatch_fields(bits):
    mem, peb = build_process(bits, MODULES)
    entries = walk_loader(mem.read, peb, bits)
    assert [e.base_name for e in entries] == ["app.exe", "ntdll.dll", "hpntdll.dll"]
    ntdll, patch = entries[1], entries[2]
    assert (ntdll.base, ntdll.size, ntdll.full_name) == (0x7711_0000, 0x1F_0000,
                                                         "C:\\Windows\\System32\\ntdll.dll")
    assert (ntdll.timestamp, ntdll.checksum) == (0x1234_5678, 0x1F_ABCD)
    assert ntdll.hotpatch_state == HotPatchState.APPLIED_FORWARD
    assert ntdll.active_patch_base == 0x7722_0000 and not ntdll.is_patch_image
    assert patch.is_patch_image and patch.hotpatch_state == HotPatchState.BASE_IMAGE
    assert all(e.bits == bits for e in entries)


def test_walk_loader_survives_a_loop_and_a_bad_pointer():
    mem, peb = build_process(64, MODULES, loop=True)  # last entry points to itself
    assert len(walk_loader(mem.read, peb, 64)) == 3
    mem, peb = build_process(64, MODULES)
    first = 0x10_0000
    mem.patch(first, 0, "<Q", 0xDEAD_0000)  # Flink to unmapped memory
    assert [e.base_name for e in walk_loader(mem.read, peb, 64)] == ["app.exe"]
    assert walk_loader(lambda a, n: None, peb, 64) == []


def test_working_set_shared_bit_decides_what_is_read():
    # valid+shared (untouched image page), valid private (copy-on-write done: patched),
    # invalid but shareable (paged out, still the section's), invalid private
    attrs = [0x1 | 0x8000 | 0x2, 0x1 | 0x20 << 4, 0x8000, 0x0]
    raw = b"".join(struct.pack("<QQ", 0x1000 * i, a) for i, a in enumerate(attrs))
    assert parse_working_set(raw, 64) == attrs
    assert unchanged_from_working_set(attrs) == [True, False, True, False]
    raw32 = b"".join(struct.pack("<II", 0x1000 * i, a) for i, a in enumerate(attrs))
    assert parse_working_set(raw32, 32) == attrs


def test_nt_paths_become_dos_paths():
    devices = {"\\Device\\HarddiskVolume3": "C:", "\\Device\\HarddiskVolume31": "D:"}
    assert nt_to_dos_path("\\Device\\HarddiskVolume3\\Windows\\System32\\ntdll.dll", devices) \
        == "C:\\Windows\\System32\\ntdll.dll"
    assert nt_to_dos_path("\\Device\\HarddiskVolume31\\x.dll", devices) == "D:\\x.dll"
    assert nt_to_dos_path("\\Device\\Mup\\srv\\share\\y.dll", devices) \
        == "\\Device\\Mup\\srv\\share\\y.dll"


def test_image_allocations_are_grouped_by_allocation_base():
    infos = [
        BasicInfo(0x10000, 0x10000, 0x1000, MEM_COMMIT, 0x02, MEM_IMAGE),  # headers
        BasicInfo(0x11000, 0x10000, 0x3000, MEM_COMMIT, 0x20, MEM_IMAGE),  # .text
        BasicInfo(0x14000, 0x10000, 0x1000, MEM_COMMIT, 0x04, MEM_IMAGE),  # .data
        BasicInfo(0x20000, 0x20000, 0x8000, MEM_COMMIT, 0x04, 0x20000),  # private heap
        BasicInfo(0x30000, 0x30000, 0x2000, MEM_COMMIT, 0x20, MEM_IMAGE),  # unlisted image
    ]
    groups = group_images(infos)
    assert [(b, s, len(r)) for b, s, r in groups] == [(0x10000, 0x5000, 3), (0x30000, 0x2000, 1)]


def test_image_allocation_end_covers_24h2_extension_pages():
    """On 24H2 the image allocation runs past SizeOfImage (extension pages, committed as
    VirtualQuery reports them or merely reserved): the allocation end counts them all."""
    from hpforensics.live.winstructs import allocation_end

    infos = [
        BasicInfo(0x10000, 0x10000, 0x5000, MEM_COMMIT, 0x20, MEM_IMAGE),  # the image
        BasicInfo(0x15000, 0x10000, 0x1000, MEM_COMMIT, 0x20, MEM_IMAGE),  # SCP CFG page
        BasicInfo(0x16000, 0x10000, 0x2000, 0x2000, 0, MEM_IMAGE),  # reserved HPAT pages
        BasicInfo(0x18000, 0x18000, 0x1000, MEM_COMMIT, 0x04, 0x20000),  # private after it
    ]
    assert allocation_end(infos, 0x10000) == 0x18000
    assert group_images(infos)[0][1] == 0x6000  # committed runs only
    assert allocation_end(infos, 0x99000) == 0x99000


def test_windows_backend_is_import_safe_on_linux():
    code = ("import ctypes, hpforensics.live.windows as w; "
            "from hpforensics.live.space import select_backend; "
            "b = select_backend('win32'); print(type(b).__name__, hasattr(ctypes, 'windll'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["WindowsBackend", "False"]
