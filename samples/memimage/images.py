"""The bytes the scenario maps: the PE helper's memory regions, and stub images built here.

samples/pe/plan.json lists, per scenario (clean, hp1, hp2, attacked, kernel_hp1), memory
regions already laid out, relocated, bound and patched at fixed addresses (mem/*.bin) and every
change planted in them with its expected verdict. Import targets (kernel32.dll, ntdll.dll,
ntoskrnl.exe) get stub images of the planned base and size so bound pointers land in a mapped
image. Process executables are tiny stubs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pefile

from memimage import pemini


@dataclass
class Region:
    file: str
    kind: str  # "image", "hpat", "private"
    module: str
    base: int
    data: bytes
    timestamp: int = 0
    checksum: int = 0
    is_patch_image: bool = False
    entry_rva: int = 0

    @property
    def size(self) -> int:
        return (len(self.data) + 0xFFF) & ~0xFFF


def _int(v) -> int:
    return int(v, 16) if isinstance(v, str) else int(v or 0)


def map_pe(raw: bytes, base: int) -> bytes:
    pe = pefile.PE(data=raw)
    size = pe.OPTIONAL_HEADER.SizeOfImage
    return pe.get_memory_mapped_image(ImageBase=base)[:size].ljust(size, b"\0")


class PeSamples:
    def __init__(self, pe_dir: Path) -> None:
        self.dir = pe_dir
        plan = pe_dir / "plan.json"
        if not plan.exists():
            raise FileNotFoundError(f"{plan}: PE samples missing (run samples/build_pe.py)")
        self.plan = json.loads(plan.read_text())
        self.scenarios = {s["name"]: s for s in self.plan["scenarios"]}

    def regions(self, scenario: str) -> list[Region]:
        out = []
        for r in self.scenarios[scenario]["regions"]:
            data = (self.dir / r["file"]).read_bytes()
            entry = 0
            if r["kind"] == "image":
                entry = pefile.PE(data=data[:0x1000],
                                  fast_load=True).OPTIONAL_HEADER.AddressOfEntryPoint
            out.append(Region(r["file"], r["kind"], r.get("module", ""), _int(r["base"]), data,
                              _int(r.get("timestamp")), _int(r.get("checksum")),
                              bool(r.get("is_patch_image")), entry))
        return out

    def changes(self, scenario: str) -> list[dict]:
        return self.scenarios[scenario]["changes"]

    def file_region(self, name: str, base: int) -> Region:
        """A sample file laid out by the loader at `base` (no patch applied)."""
        raw = (self.dir / name).read_bytes()
        meta = self.plan["files"][name]
        pe = pefile.PE(data=raw, fast_load=True)
        return Region(name, "image", name, base, map_pe(raw, base), _int(meta["timestamp"]),
                      _int(meta["checksum"]), name != "hpbase.dll" and name != "hpkern.sys",
                      pe.OPTIONAL_HEADER.AddressOfEntryPoint)

    def import_target(self, name: str) -> tuple[int, int]:
        t = self.plan["import_targets"][name]
        return _int(t["base"]), _int(t["size"])


def stub_image(name: str, base: int, size: int, timestamp: int, *, kernel: bool = False) -> bytes:
    """A system image stand-in: real headers and SizeOfImage, a code page; the rest not resident."""
    text = bytes.fromhex("4883ec28") + b"\x33\xc9" + bytes.fromhex("4883c428c3") + name.encode()
    return pemini.build_pe(image_base=base, timestamp=timestamp, dll=not kernel,
                           subsystem=1 if kernel else 3,
                           sections=[pemini.Section(b".text", text, pemini.SCN_CODE),
                                     pemini.Section(b".data", b"", pemini.SCN_DATA,
                                                    size=size - 0x2000)])


def exe_stub(name: str, base: int) -> Region:
    ts = 0x66F2B1A9 ^ (sum(name.encode()) << 8)
    data = pemini.exe_stub(name, base, ts)
    return Region(name, "image", name, base, data, ts, 0, False, 0x1000)
