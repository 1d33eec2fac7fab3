"""Exports, imports (IAT and delay-load IAT slots), base relocations and debug records.

pefile does the parsing; this module turns its objects into plain records and checks the few
things pefile only warns about (a directory pointing outside the image).
"""
from __future__ import annotations

import logging
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pefile

from hpforensics.errors import InputError

from hpforensics.pe.structures import (
    IMAGE_DEBUG_TYPE_CODEVIEW,
    IMAGE_DEBUG_TYPE_EX_DLLCHARACTERISTICS,
    c_pe,
)

if TYPE_CHECKING:
    from hpforensics.pe.image import PEImage

log = logging.getLogger(__name__)

_DIR = pefile.DIRECTORY_ENTRY
MAX_DEBUG_ENTRIES = 64


@dataclass(frozen=True)
class ImportSlot:
    """One IAT slot: the loader writes the import's address here."""

    dll: str
    name: str  # import name, or "#<ordinal>"
    rva: int  # RVA of the slot
    size: int
    delay: bool = False


@dataclass(frozen=True)
class CodeView:
    pdb_name: str
    guid: str  # canonical GUID text, as symbol servers print it
    age: int

    @property
    def symbol_key(self) -> str:
        """The symbol-server directory key: GUID without dashes, upper case, then age in hex."""
        return self.guid.replace("-", "").upper() + f"{self.age:X}"


def _parse(image: "PEImage", *names: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image.pe.parse_data_directories(directories=[_DIR[n] for n in names])


def _check_dir(image: "PEImage", index: int, what: str) -> None:
    d = image.pe.OPTIONAL_HEADER.DATA_DIRECTORY
    if len(d) > index and d[index].VirtualAddress:
        rva = d[index].VirtualAddress
        # Only the first bytes must exist: the rest is bounded by each table's own counts.
        image.reader.read(rva, min(d[index].Size, 4) or 4, f"{what} directory",
                          image.data_directory_field(index))


def exports(image: "PEImage") -> dict[int, str]:
    _check_dir(image, 0, "export")
    _parse(image, "IMAGE_DIRECTORY_ENTRY_EXPORT")
    out: dict[int, str] = {}
    exp = getattr(image.pe, "DIRECTORY_ENTRY_EXPORT", None)
    if exp is None:
        return out
    for sym in exp.symbols:
        if sym.forwarder or not sym.address:
            continue
        name = sym.name.decode("latin-1") if sym.name else f"#{sym.ordinal}"
        out.setdefault(sym.address, name)
    return out


def imports(image: "PEImage") -> list[ImportSlot]:
    _check_dir(image, 1, "import")
    _parse(image, "IMAGE_DIRECTORY_ENTRY_IMPORT", "IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT")
    ps = image.pointer_size
    out: list[ImportSlot] = []
    for attr, delay in (("DIRECTORY_ENTRY_IMPORT", False), ("DIRECTORY_ENTRY_DELAY_IMPORT", True)):
        for entry in getattr(image.pe, attr, []) or []:
            dll = entry.dll.decode("latin-1") if entry.dll else "?"
            for imp in entry.imports:
                if imp.address is None:
                    continue
                name = imp.name.decode("latin-1") if imp.name else f"#{imp.ordinal}"
                out.append(ImportSlot(dll, name, imp.address - image.pe.OPTIONAL_HEADER.ImageBase,
                                      ps, delay))
    return out


def base_relocations(image: "PEImage") -> list[tuple[int, int]]:
    """(rva, type) of every base relocation; type 0 (padding) included for completeness.

    Read block by block as the loader walks them, not through pefile: pefile builds one object
    per entry (25 s for a million) and drops every relocation, silently, when one block header
    is bad (SizeOfBlock 0, odd, or past the directory); an image compared without them shows
    every relocated pointer as a change. A bad block is named instead."""
    _check_dir(image, 5, "base relocation")
    d = image.pe.OPTIONAL_HEADER.DATA_DIRECTORY
    if len(d) <= 5 or not d[5].VirtualAddress or not d[5].Size:
        return []
    out: list[tuple[int, int]] = []
    pos, end = d[5].VirtualAddress, d[5].VirtualAddress + d[5].Size
    # The loader relocates the mapped image: a table past SizeOfImage cannot be real, and
    # its blocks could read as many zero-filled section tails as the sections claim
    # (fuzz_pe: 2.4 KiB gave 8 M entries and 13 s)
    if end > image.reader.size_of_image:
        raise InputError(image.path, f"base relocation directory (RVA {pos:#x}, size "
                                     f"{d[5].Size:#x}) runs past SizeOfImage "
                                     f"{image.reader.size_of_image:#x}",
                         image.data_directory_field(5))
    while pos + 8 <= end:
        page, block = pefile.struct.unpack("<II",
                                           image.reader.read(pos, 8, "base relocation block"))
        if block == 0 and page == 0:
            break  # zero padding ends the table
        if block < 8 or pos + block > end or block & 1:
            raise InputError(image.path, f"base relocation block at RVA {pos:#x} has bad "
                                         f"SizeOfBlock {block:#x}", image.reader.where(pos))
        raw = image.reader.read(pos + 8, block - 8, "base relocation entries")
        out.extend((page + (e & 0xFFF), e >> 12)
                   for e in pefile.struct.unpack(f"<{len(raw) // 2}H", raw))
        pos += block
    return out


def debug(image: "PEImage") -> tuple[CodeView | None, int | None]:
    """CodeView (RSDS) record and EX_DLLCHARACTERISTICS value, read by RVA (both layouts)."""
    d = image.pe.OPTIONAL_HEADER.DATA_DIRECTORY
    if len(d) <= 6 or not d[6].VirtualAddress:
        return None, None
    reader = image.reader
    count = min(d[6].Size // 28, MAX_DEBUG_ENTRIES)
    raw = reader.read(d[6].VirtualAddress, count * 28, "debug directory",
                      image.data_directory_field(6))
    codeview, ex = None, None
    for i in range(count):
        (_chars, _ts, _maj, _min, typ, size, addr,
         _ptr) = pefile.struct.unpack_from("<IIHHIIII", raw, i * 28)
        if not addr or not size:
            continue
        if (typ == IMAGE_DEBUG_TYPE_CODEVIEW and codeview is None
                and size >= len(c_pe.CV_INFO_PDB70)):
            body = reader.read(addr, min(size, 4096), "CodeView record",
                               d[6].VirtualAddress + 28 * i + 20)
            if body[:4] != b"RSDS":
                continue
            cv = c_pe.CV_INFO_PDB70(body)
            name = body[len(c_pe.CV_INFO_PDB70):].split(b"\0", 1)[0].decode("utf-8", "replace")
            codeview = CodeView(name, str(uuid.UUID(bytes_le=bytes(cv.Guid))), cv.Age)
        elif typ == IMAGE_DEBUG_TYPE_EX_DLLCHARACTERISTICS and size >= 4:
            ex = reader.u32(addr, "EX_DLLCHARACTERISTICS", d[6].VirtualAddress + 28 * i + 20)
    return codeview, ex
