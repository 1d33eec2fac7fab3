"""The few small PE images the scenario builds itself: the kernel stub and process executables.

File alignment equals section alignment, so each file is also its own mapped layout. The kernel
stub carries the CodeView record (RSDS, ntkrnlmp.pdb, GUID, age) Volatility's PDB scanner looks
for, and a data section that holds the kernel globals named in the symbol table.
"""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

PAGE = 0x1000
SCN_CODE = 0x60000020  # CODE | EXECUTE | READ
SCN_RDATA = 0x40000040  # INITIALIZED_DATA | READ
SCN_DATA = 0xC0000040  # INITIALIZED_DATA | READ | WRITE


@dataclass
class Section:
    name: bytes
    data: bytes
    characteristics: int
    size: int = 0  # virtual size in pages' worth of bytes; 0 = len(data) rounded up


def codeview(pdb_name: str, guid: uuid.UUID, age: int) -> bytes:
    return b"RSDS" + guid.bytes_le + struct.pack("<I", age) + pdb_name.encode() + b"\0"


def build_pe(*, image_base: int, sections: list[Section], timestamp: int, dll: bool,
             subsystem: int = 2, debug: bytes | None = None, checksum: int = 0) -> bytes:
    """A PE32+ file whose file layout equals its memory layout. Debug data goes in .rdata."""
    rva = PAGE
    placed = []
    debug_dir = None
    for sec in sections:
        data = sec.data
        if debug is not None and sec.name == b".rdata":
            # IMAGE_DEBUG_DIRECTORY at the start, the CodeView record after it
            cv_rva = rva + 28
            entry = struct.pack("<IIHHIIII", 0, timestamp, 0, 0, 2, len(debug), cv_rva, cv_rva)
            data = entry + debug + data
            debug_dir = (rva, 28)
        vsize = max(sec.size, len(data))
        span = (vsize + PAGE - 1) & ~(PAGE - 1)
        placed.append((sec, rva, data.ljust(span, b"\0"), vsize))
        rva += span
    size_of_image = rva

    e_lfanew = 0x80
    n = len(placed)
    code = [p for p in placed if p[0].characteristics & 0x20]
    entry_rva = code[0][1] if code else 0
    characteristics = 0x0022 | (0x2000 if dll else 0)  # EXECUTABLE | LARGE_ADDRESS_AWARE | DLL
    dirs = [(0, 0)] * 16
    if debug_dir:
        dirs[6] = debug_dir
    opt = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B, 14, 38, sum(len(p[2]) for p in code), 0, 0, entry_rva,
        code[0][1] if code else 0, image_base, PAGE, PAGE, 10, 0, 10, 0, 10, 0, 0,
        size_of_image, PAGE, checksum, subsystem, 0x4160 if dll else 0x8160,
        0x100000, 0x1000, 0x100000, 0x1000, 0, 16,
    ) + b"".join(struct.pack("<II", *d) for d in dirs)
    header = bytearray(PAGE)
    header[0:2] = b"MZ"
    struct.pack_into("<I", header, 0x3C, e_lfanew)
    header[0x40:0x40 + 39] = b"This program cannot be run in DOS mode.\r"[:39]
    coff = struct.pack("<4sHHIIIHH", b"PE\0\0", 0x8664, n, timestamp, 0, 0, len(opt),
                       characteristics)
    header[e_lfanew : e_lfanew + len(coff) + len(opt)] = coff + opt
    pos = e_lfanew + len(coff) + len(opt)
    for sec, srva, data, vsize in placed:
        header[pos : pos + 40] = struct.pack("<8sIIIIIIHHI", sec.name, vsize, srva, len(data),
                                             srva, 0, 0, 0, 0, sec.characteristics)
        pos += 40
    return bytes(header) + b"".join(p[2] for p in placed)


def section_rva(sections: list[Section], name: bytes, debug: bytes | None = None) -> int:
    """RVA where section `name`'s own data starts (after the debug record for .rdata)."""
    rva = PAGE
    for sec in sections:
        extra = 28 + len(debug) if (debug is not None and sec.name == b".rdata") else 0
        if sec.name == name:
            return rva + extra
        span = (max(sec.size, len(sec.data) + extra) + PAGE - 1) & ~(PAGE - 1)
        rva += span
    raise KeyError(name)


def exe_stub(name: str, image_base: int, timestamp: int) -> bytes:
    """A small console executable: one code page that calls nothing, one data page."""
    text = bytes.fromhex("4883ec28") + b"\x33\xc9" + bytes.fromhex("4883c428c3")
    text += name.encode()[:64]
    return build_pe(image_base=image_base, timestamp=timestamp, dll=False, subsystem=3,
                    sections=[Section(b".text", text, SCN_CODE),
                              Section(b".data", b"\0" * 16, SCN_DATA)])
