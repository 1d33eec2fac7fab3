"""A small deterministic x64 PE writer for the bundled samples (not part of the package).

Sections sit at fixed RVAs (one page each unless told otherwise), so code can refer to labels
anywhere; references are recorded as fixups and resolved when the image is written. The
hotpatch, load-config, dynamic-relocation and CodeView records are packed from the same
declarations the parser reads (hpforensics.pe.structures); the standard headers (DOS, COFF,
optional header, section table, import/export directories) follow the PE/COFF specification.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pefile

FILE_ALIGN = 0x200
SECT_ALIGN = 0x1000
HEADERS_SIZE = 0x400

SCN_CODE = 0x60000020  # code | execute | read
SCN_RDATA = 0x40000040  # initialised data | read
SCN_DATA = 0xC0000040  # initialised data | read | write
SCN_RELOC = 0x42000040  # initialised data | discardable | read


def align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass
class Fixup:
    section: str
    offset: int
    kind: str  # "rva32", "va64" (absolute, gets a base relocation), "rel32"
    label: str
    addend: int = 0
    reloc: bool = True  # va64 only: emit a base relocation


@dataclass
class Sec:
    name: str
    rva: int
    flags: int
    data: bytearray = field(default_factory=bytearray)
    vsize_extra: int = 0  # zero-fill beyond the raw data (bss)


class Image:
    """Sections + labels + fixups; `write()` returns the finished file bytes."""

    def __init__(self, image_base: int, timestamp: int, *, dll: bool = True,
                 subsystem: int = 2) -> None:
        self.image_base = image_base
        self.timestamp = timestamp
        self.dll = dll
        self.subsystem = subsystem
        self.sections: dict[str, Sec] = {}
        self.labels: dict[str, int] = {}
        self.fixups: list[Fixup] = []
        self.dirs: dict[int, tuple[str, int]] = {}  # index -> (label, size)
        self.entry_label: str | None = None
        self.relocs: list[int] = []  # RVAs of DIR64 base relocations

    # -- building
    def section(self, name: str, flags: int) -> Sec:
        rva = SECT_ALIGN * (len(self.sections) + 1)
        sec = Sec(name, rva, flags)
        self.sections[name] = sec
        return sec

    def here(self, sec: str) -> int:
        return self.sections[sec].rva + len(self.sections[sec].data)

    def label(self, name: str, sec: str) -> int:
        rva = self.here(sec)
        self.labels[name] = rva
        return rva

    def emit(self, sec: str, data: bytes, label: str | None = None, align_to: int = 1) -> int:
        s = self.sections[sec]
        pad = align(len(s.data), align_to) - len(s.data)
        s.data += (b"\xCC" if s.flags == SCN_CODE else b"\0") * pad
        if label:
            self.label(label, sec)
        rva = self.here(sec)
        s.data += data
        return rva

    def ref(self, sec: str, kind: str, label: str, addend: int = 0, *, at: int | None = None,
            reloc: bool = True) -> int:
        """Emit a placeholder (or point at an existing one with `at`=offset in section)."""
        s = self.sections[sec]
        if at is None:
            at = len(s.data)
            s.data += bytes(8 if kind == "va64" else 4)
        self.fixups.append(Fixup(sec, at, kind, label, addend, reloc))
        return s.rva + at

    def code(self, sec: str, parts: list) -> int:
        """Emit code: bytes, or ("rel32"|"rva32"|"va64", label[, addend]) placeholders."""
        start = self.here(sec)
        for p in parts:
            if isinstance(p, (bytes, bytearray)):
                self.sections[sec].data += p
            else:
                self.ref(sec, p[0], p[1], p[2] if len(p) > 2 else 0)
        return start

    def directory(self, index: int, label: str, size: int) -> None:
        self.dirs[index] = (label, size)

    def va(self, label: str) -> int:
        return self.image_base + self.labels[label]

    # -- resolving and writing
    def resolve(self) -> None:
        for f in self.fixups:
            s = self.sections[f.section]
            target = self.labels[f.label] + f.addend
            if f.kind == "rva32":
                struct.pack_into("<I", s.data, f.offset, target)
            elif f.kind == "va64":
                struct.pack_into("<Q", s.data, f.offset, self.image_base + target)
                if f.reloc:
                    self.relocs.append(s.rva + f.offset)
            elif f.kind == "rel32":
                struct.pack_into("<i", s.data, f.offset, target - (s.rva + f.offset + 4))
            else:
                raise ValueError(f.kind)
        self.fixups.clear()

    def reloc_blocks(self) -> bytes:
        """IMAGE_BASE_RELOCATION blocks (DIR64) for every absolute pointer emitted."""
        out = bytearray()
        pages: dict[int, list[int]] = {}
        for rva in sorted(set(self.relocs)):
            pages.setdefault(rva & ~0xFFF, []).append(rva & 0xFFF)
        for page, offs in sorted(pages.items()):
            entries = [(10 << 12) | o for o in offs]
            if len(entries) % 2:
                entries.append(0)
            out += struct.pack("<II", page, 8 + 2 * len(entries))
            out += struct.pack(f"<{len(entries)}H", *entries)
        return bytes(out)

    def write(self, characteristics_dll: int = 0x2022, dll_characteristics: int = 0x4160) -> bytes:
        secs = list(self.sections.values())
        raw_off = HEADERS_SIZE
        table = []
        for s in secs:
            raw = align(len(s.data), FILE_ALIGN)
            table.append((s, raw_off if raw else 0, raw))
            raw_off += raw
        last = secs[-1]
        size_of_image = align(last.rva + len(last.data) + last.vsize_extra, SECT_ALIGN)
        code = [t for t in table if t[0].flags == SCN_CODE]
        size_code = sum(r for _, _, r in code)
        size_idata = sum(r for s, _, r in table if s.flags != SCN_CODE)

        out = bytearray(HEADERS_SIZE)
        # DOS header: "MZ", e_lfanew at 0x3C -> 0x80; a stub-free header is valid.
        out[0:2] = b"MZ"
        struct.pack_into("<I", out, 0x3C, 0x80)
        at = 0x80
        out[at:at + 4] = b"PE\0\0"
        chars = characteristics_dll if self.dll else 0x0022
        struct.pack_into("<HHIIIHH", out, at + 4, 0x8664, len(secs), self.timestamp, 0, 0, 240,
                         chars)
        opt = at + 24
        entry = self.labels[self.entry_label] if self.entry_label else 0
        struct.pack_into(
            "<HBBIIIII", out, opt, 0x20B, 14, 38, size_code, size_idata, 0, entry,
            code[0][0].rva if code else 0,
        )
        struct.pack_into(
            "<QIIHHHHHHIIIIHHQQQQII", out, opt + 24, self.image_base, SECT_ALIGN, FILE_ALIGN,
            10, 0, 10, 0, 10, 0, 0, size_of_image, HEADERS_SIZE, 0, self.subsystem,
            dll_characteristics, 0x100000, 0x1000, 0x100000, 0x1000, 0, 16,
        )
        dd = opt + 112
        for index, (label, size) in self.dirs.items():
            struct.pack_into("<II", out, dd + 8 * index, self.labels[label], size)
        st = dd + 16 * 8
        for i, (s, off, raw) in enumerate(table):
            name = s.name.encode().ljust(8, b"\0")
            struct.pack_into("<8sIIIIIIHHI", out, st + 40 * i, name, len(s.data) + s.vsize_extra,
                             s.rva, raw, off, 0, 0, 0, 0, s.flags)
        for s, off, raw in table:
            out += s.data + bytes(raw - len(s.data))
        # The real PE checksum (same algorithm as the loader/ImageHlp), computed by pefile.
        csum = pefile.PE(data=bytes(out), fast_load=True).generate_checksum()
        struct.pack_into("<I", out, opt + 64, csum)
        return bytes(out)


def checksum_of(data: bytes) -> int:
    return struct.unpack_from("<I", data, 0x80 + 24 + 64)[0]
