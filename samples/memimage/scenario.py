"""What the sample machine holds: processes, images, hotpatches, hooks, paged-out pages.

Everything planted is recorded in the plan (samples/memimage-plan.json) so tests compare the
analysis with what was put there, not with a previous run.
"""
from __future__ import annotations

import uuid
from pathlib import Path

from memimage.builder import KERNEL_BASE, LdrEntry, WindowsImageBuilder
from memimage.images import ImageSet

GUID = uuid.UUID("5b0a3c1e-9d47-4e2a-8f61-24a0c0de2610")
AGE = 1
SIZE = 16 << 20
T0 = 1_778_745_600  # 2026-05-14 08:00:00 UTC, after the May 2026 hotpatch


def build_scenario(pe_dir: Path) -> tuple[WindowsImageBuilder, dict]:
    b = WindowsImageBuilder(SIZE, GUID, AGE)
    images = ImageSet(pe_dir)
    plan: dict = {"processes": [], "kernel_modules": [], "findings": []}

    b.add_driver(LdrEntry(KERNEL_BASE, len(b.kernel_image), "\\SystemRoot\\system32\\ntoskrnl.exe",
                          KERNEL_BASE + 0x1000, 0x66F2B1A9, 0), b.kernel_image)
    system = b.create_process(4, "System", 0, T0, system=True)
    plan["processes"].append({"pid": 4, "name": "System"})

    def process(pid: int, name: str, ppid: int, offset: int, modules: list) -> None:
        p = b.create_process(pid, name, ppid, T0 + offset)
        exe_base = 0x00007FF6A0000000 + (pid << 16)
        exe = images.exe(name, exe_base)
        path = f"C:\\Windows\\System32\\{name}"
        b.map_user_image(p, exe_base, exe.data, path,
                         LdrEntry(exe_base, exe.size, path, exe_base + 0x1000, exe.timestamp,
                                  exe.checksum, load_reason=0))
        for m in modules:
            m(b, p)
        plan["processes"].append({"pid": pid, "name": name, "ppid": ppid,
                                  "modules": [mm.full_name for mm in p.modules]})

    def plain_dll(b: WindowsImageBuilder, p) -> None:
        img = images.base_image(0x00007FFB80000000)
        path = "C:\\Windows\\System32\\hpbase.dll"
        b.map_user_image(p, img.base, img.data, path,
                         LdrEntry(img.base, img.size, path, img.base + img.entry_rva,
                                  img.timestamp, img.checksum, load_reason=0))

    process(388, "smss.exe", 4, 5, [])
    process(512, "csrss.exe", 388, 9, [])
    process(604, "winlogon.exe", 388, 10, [plain_dll])
    process(1024, "svchost.exe", 604, 20, [plain_dll])
    del system
    return b, plan
