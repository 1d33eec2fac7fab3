"""The little of ELF the live scanner needs: machine, type, and function symbols by address.

Declared once with struct; read from an open descriptor with pread so a mapped file is read
where it lies, never loaded whole. Malformed files raise InputError (the caller keeps going).
"""
from __future__ import annotations

import bisect
import logging
import os
import struct
from dataclasses import dataclass, field

from hpforensics.errors import InputError

log = logging.getLogger(__name__)

ELF_MAGIC = b"\x7fELF"
ET_EXEC, ET_DYN = 2, 3
EM_386, EM_X86_64, EM_AARCH64 = 3, 62, 183
SHT_SYMTAB, SHT_DYNSYM = 2, 11
STT_FUNC, STT_GNU_IFUNC = 2, 10
# (header, section header, symbol) layouts for ELFCLASS32 / ELFCLASS64, little endian
_EHDR = {1: struct.Struct("<16sHHIIIIIHHHHHH"), 2: struct.Struct("<16sHHIQQQIHHHHHH")}
_SHDR = {1: struct.Struct("<IIIIIIIIII"), 2: struct.Struct("<IIQQQQIIQQ")}
_SYM = {1: struct.Struct("<IIIBBH"), 2: struct.Struct("<IBBHQQ")}
# p_type, then (offset, vaddr) at these slots
_PHDR = {1: struct.Struct("<IIIIIIII"), 2: struct.Struct("<IIQQQQQQ")}
_PH_OFF_VADDR = {1: (1, 2), 2: (2, 3)}
PT_LOAD, PT_INTERP = 1, 3
MAX_SYMBOL_TABLE = 64 << 20  # a bigger table is not one a real linker wrote


@dataclass
class ElfInfo:
    path: str
    elf_type: int
    machine: int
    bits: int
    loads: list[tuple[int, int]] = field(default_factory=list)  # PT_LOAD (p_offset, p_vaddr)
    interp: bool = False  # has PT_INTERP: a (PIE) program, not a library
    _addrs: list[int] = field(default_factory=list, repr=False)
    _syms: list[tuple[int, int, str]] = field(default_factory=list, repr=False)

    @property
    def shared_object(self) -> bool:
        """ET_DYN: a library, or a PIE program (tell those apart by the process's exe:
        libc.so.6 has PT_INTERP too)."""
        return self.elf_type == ET_DYN

    def vaddr_of(self, file_offset: int) -> int:
        """The link-time address of a file offset (through the PT_LOAD that holds it)."""
        best = None
        for p_offset, p_vaddr in self.loads:
            if p_offset <= file_offset and (best is None or p_offset >= best[0]):
                best = (p_offset, p_vaddr)
        return file_offset + (best[1] - best[0] if best else 0)

    def symbol_at(self, vaddr: int) -> tuple[str, int] | None:
        """(name, offset into it) of the function holding `vaddr` (file virtual address)."""
        i = bisect.bisect_right(self._addrs, vaddr) - 1
        if i < 0:
            return None
        start, size, name = self._syms[i]
        if vaddr < start + max(size, 1):
            return name, vaddr - start
        return None


def is_elf(fd: int) -> bool:
    return os.pread(fd, 4, 0) == ELF_MAGIC


def read_elf(fd: int, path: str) -> ElfInfo:
    ident = os.pread(fd, 64, 0)
    if len(ident) < 52 or ident[:4] != ELF_MAGIC:
        raise InputError(path, "not an ELF file", 0)
    cls = ident[4]
    if cls not in _EHDR or ident[5] != 1:
        raise InputError(path, f"unsupported ELF class/endianness {cls}/{ident[5]}", 4)
    eh = _EHDR[cls].unpack_from(ident)
    e_type, e_machine, e_phoff, e_shoff = eh[1], eh[2], eh[5], eh[6]
    e_phentsize, e_phnum, e_shentsize, e_shnum = eh[9], eh[10], eh[11], eh[12]
    info = ElfInfo(path, e_type, e_machine, 32 * cls)
    phdr = _PHDR[cls]
    if e_phoff and e_phentsize == phdr.size and 0 < e_phnum < 0x10000:
        table = os.pread(fd, e_phnum * phdr.size, e_phoff)
        o, v = _PH_OFF_VADDR[cls]
        for i in range(len(table) // phdr.size):
            ph = phdr.unpack_from(table, i * phdr.size)
            if ph[0] == PT_LOAD:
                info.loads.append((ph[o], ph[v]))
            elif ph[0] == PT_INTERP:
                info.interp = True
    shdr = _SHDR[cls]
    if not e_shoff or e_shentsize != shdr.size or not 0 < e_shnum < 0x10000:
        return info  # stripped of section headers: no symbols, still comparable
    table = os.pread(fd, e_shnum * shdr.size, e_shoff)
    if len(table) != e_shnum * shdr.size:
        raise InputError(path, "section header table runs past the end of the file", e_shoff)
    sections = [shdr.unpack_from(table, i * shdr.size) for i in range(e_shnum)]
    syms: dict[int, tuple[int, int, str]] = {}
    for sh in sections:
        sh_type = sh[1]
        if sh_type not in (SHT_SYMTAB, SHT_DYNSYM):
            continue
        off, size, link, entsize = sh[4], sh[5], sh[6], sh[9]  # same slots in both classes
        if entsize != _SYM[cls].size or size > MAX_SYMBOL_TABLE or link >= len(sections):
            continue
        strsec = sections[link]
        strtab = os.pread(fd, min(strsec[5], MAX_SYMBOL_TABLE), strsec[4])
        data = os.pread(fd, size, off)
        for (name_off, value, sym_size, st_info) in _iter_syms(cls, data):
            if st_info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or not value:
                continue
            end = strtab.find(b"\0", name_off)
            name = strtab[name_off:end if end >= 0 else None].decode("utf-8", "replace")
            # keep the sized, named entry when .symtab and .dynsym both list an address
            if value not in syms or (sym_size and not syms[value][1]):
                syms[value] = (value, sym_size, name)
    info._syms = sorted(syms.values())
    info._addrs = [s[0] for s in info._syms]
    return info


def _iter_syms(cls: int, data: bytes):
    sym = _SYM[cls]
    for i in range(len(data) // sym.size):
        f = sym.unpack_from(data, i * sym.size)
        if cls == 2:  # st_name, st_info, st_other, st_shndx, st_value, st_size
            yield f[0], f[4], f[5], f[1]
        else:  # st_name, st_value, st_size, st_info, st_other, st_shndx
            yield f[0], f[1], f[2], f[3]
