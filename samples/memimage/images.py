"""The PE images the scenario maps, laid out and relocated the way the loader maps them.

Sample DLLs come from the project's own generated PE files (samples/pe); process executables
are tiny stubs built here. Layout and base relocation use pefile's memory-mapped image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pefile

from memimage import pemini


@dataclass
class Mapped:
    base: int
    data: bytes
    timestamp: int
    checksum: int
    entry_rva: int
    path: Path | None = None

    @property
    def size(self) -> int:
        return (len(self.data) + 0xFFF) & ~0xFFF


def map_pe(raw: bytes, base: int, path: Path | None = None) -> Mapped:
    pe = pefile.PE(data=raw, fast_load=False)
    data = pe.get_memory_mapped_image(ImageBase=base)
    size = pe.OPTIONAL_HEADER.SizeOfImage
    data = data[:size].ljust(size, b"\0")
    return Mapped(base, data, pe.FILE_HEADER.TimeDateStamp, pe.OPTIONAL_HEADER.CheckSum,
                  pe.OPTIONAL_HEADER.AddressOfEntryPoint, path)


class ImageSet:
    def __init__(self, pe_dir: Path) -> None:
        self.pe_dir = pe_dir

    def file(self, name: str) -> Path:
        path = self.pe_dir / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: sample PE missing (build samples/pe first)")
        return path

    def base_image(self, base: int) -> Mapped:
        return self.load("hpbase.dll", base)

    def load(self, name: str, base: int) -> Mapped:
        path = self.file(name)
        return map_pe(path.read_bytes(), base, path)

    def exe(self, name: str, base: int) -> Mapped:
        ts = 0x66F2B1A9 ^ (sum(name.encode()) << 8)
        raw = pemini.exe_stub(name, base, ts)
        return map_pe(raw, base)
