"""The PE headers the loader reads to map an image, parsed with the offsets kept for errors.

Only what laying out an image needs: the full PE model lives in `hpforensics.pe`. Every check
names the file offset it failed at, so a malformed file is one clear line, never a traceback.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from hpforensics.errors import InputError
from hpforensics.pe.peek import peek

log = logging.getLogger(__name__)

MAX_IMAGE_SIZE = 0x4000_0000  # 1 GiB: far above any real image, low enough to refuse junk
MAX_SLACK_BEYOND_SECTIONS = 16 << 20  # SizeOfImage beyond the last section's end
SCN_CNT_CODE = 0x20
SCN_MEM_DISCARDABLE = 0x02000000
SCN_MEM_EXECUTE = 0x20000000
SCN_MEM_WRITE = 0x80000000
MAGIC_PE32 = 0x10B
MAGIC_PE32_PLUS = 0x20B

_FILE_HEADER = struct.Struct("<HHIIIHH")
_SECTION = struct.Struct("<8sIIIIIIHHI")


@dataclass(frozen=True)
class Section:
    name: str
    va: int
    vsize: int  # VirtualSize, or SizeOfRawData when VirtualSize is 0 (as the loader does)
    raw_offset: int
    raw_size: int
    characteristics: int
    header_offset: int  # file offset of this section header, for error messages

    @property
    def executable(self) -> bool:
        return bool(self.characteristics & (SCN_MEM_EXECUTE | SCN_CNT_CODE))

    @property
    def writable(self) -> bool:
        return bool(self.characteristics & SCN_MEM_WRITE)

    @property
    def discardable(self) -> bool:
        return bool(self.characteristics & SCN_MEM_DISCARDABLE)


@dataclass(frozen=True)
class Headers:
    machine: int
    timestamp: int
    characteristics: int
    is64: bool
    image_base: int
    section_alignment: int
    file_alignment: int
    size_of_image: int
    size_of_headers: int
    checksum: int
    subsystem: int
    dll_characteristics: int
    directories: tuple[tuple[int, int], ...]  # (rva, size) per data directory
    sections: tuple[Section, ...]
    optional_offset: int

    @property
    def pointer_size(self) -> int:
        return 8 if self.is64 else 4

    def directory(self, index: int) -> tuple[int, int]:
        return self.directories[index] if index < len(self.directories) else (0, 0)

    def rva_to_offset(self, rva: int) -> int | None:
        """File offset holding `rva`, for error messages; None when no section holds it."""
        if rva < self.size_of_headers:
            return rva
        for s in self.sections:
            if s.va <= rva < s.va + max(s.vsize, s.raw_size) and rva - s.va < s.raw_size:
                return s.raw_offset + rva - s.va
        return None


def _u(fmt: str, data: bytes | memoryview, offset: int, path: str, what: str) -> tuple:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(data):
        raise InputError(path, f"truncated: {what} lies beyond the end of the file", offset)
    return struct.unpack_from(fmt, data, offset)


def parse_headers(data: bytes | memoryview, path: str, mapped: bool = False) -> Headers:
    """Parse DOS, NT, optional and section headers of a file-layout PE; with `mapped`, the
    header page of an image as mapped (section raw data is not in `data` then)."""
    if len(data) < 0x40 or bytes(data[:2]) != b"MZ":
        raise InputError(path, "not a PE file: no MZ signature", 0)
    (e_lfanew,) = _u("<I", data, 0x3C, path, "e_lfanew")
    if e_lfanew + 0x18 > len(data):
        raise InputError(path, f"e_lfanew {e_lfanew:#x} points past the end of the file", 0x3C)
    if bytes(data[e_lfanew : e_lfanew + 4]) != b"PE\0\0":
        raise InputError(path, "not a PE file: no PE signature where e_lfanew points", e_lfanew)
    fh = e_lfanew + 4
    machine, n_sections, timestamp, _, _, opt_size, characteristics = _u(
        _FILE_HEADER.format, data, fh, path, "file header"
    )
    opt = fh + _FILE_HEADER.size
    (magic,) = _u("<H", data, opt, path, "optional header")
    if magic not in (MAGIC_PE32, MAGIC_PE32_PLUS):
        raise InputError(path, f"unknown optional header magic {magic:#x}", opt)
    is64 = magic == MAGIC_PE32_PLUS
    if is64:
        (image_base,) = _u("<Q", data, opt + 24, path, "ImageBase")
    else:
        (image_base,) = _u("<I", data, opt + 28, path, "ImageBase")
    sect_align, file_align = _u("<II", data, opt + 32, path, "alignment")
    size_of_image, size_of_headers, checksum, subsystem, dll_chars = _u(
        "<IIIHH", data, opt + 56, path, "SizeOfImage"
    )
    n_dirs_off = opt + (108 if is64 else 92)
    (n_dirs,) = _u("<I", data, n_dirs_off, path, "NumberOfRvaAndSizes")
    n_dirs = min(n_dirs, 16, max(0, (opt + opt_size - n_dirs_off - 4) // 8))
    dirs = tuple(
        _u("<II", data, n_dirs_off + 4 + 8 * i, path, "data directory") for i in range(n_dirs)
    )
    if not 0 < size_of_image <= MAX_IMAGE_SIZE:
        raise InputError(path, f"implausible SizeOfImage {size_of_image:#x}", opt + 56)
    if sect_align == 0 or sect_align & (sect_align - 1):
        raise InputError(path, f"SectionAlignment {sect_align:#x} is not a power of two", opt + 32)
    sections = []
    table = opt + opt_size
    for i in range(n_sections):
        off = table + i * _SECTION.size
        name, vsize, va, raw_size, raw_ptr, _, _, _, _, chars = _u(
            _SECTION.format, data, off, path, f"section header {i}"
        )
        vsize = vsize or raw_size
        if va + vsize > size_of_image + sect_align or va + vsize < va:
            raise InputError(
                path, f"section {i} [{va:#x}, +{vsize:#x}) lies beyond SizeOfImage "
                f"{size_of_image:#x}", off
            )
        if raw_size and raw_ptr + raw_size > len(data) and not mapped:
            raise InputError(path, f"truncated: section {i} raw data [{raw_ptr:#x}, "
                             f"+{raw_size:#x}) runs past the end of the file "
                             f"({len(data):#x} bytes)", off)
        label = name.rstrip(b"\0").decode("latin-1")
        sections.append(Section(label, va, vsize, raw_ptr, raw_size, chars, off))
    # Linkers set SizeOfImage to the aligned end of the last section. A header claiming far more
    # than its sections (1 GiB from a 4 KiB file) would have us lay out and hash memory that no
    # byte of the file fills: refuse it rather than exhaust memory.
    end = max((s.va + s.vsize for s in sections), default=size_of_headers)
    if size_of_image > end + MAX_SLACK_BEYOND_SECTIONS:
        raise InputError(path, f"SizeOfImage {size_of_image:#x} reaches {size_of_image - end:#x} "
                               f"bytes past the end of the last section ({end:#x}): implausible",
                         opt + 56)
    return Headers(
        machine, timestamp, characteristics, is64, image_base, sect_align, file_align,
        size_of_image, size_of_headers, checksum, subsystem, dll_chars, dirs,
        tuple(sections), opt,
    )


def mapped_size_of_image(head: bytes) -> int | None:
    """SizeOfImage from the first bytes of a mapped image, or None when they hold no PE
    header (never raises: the caller is sizing a mapping, not parsing evidence)."""
    h = peek(head)
    return h.size_of_image if h is not None and 0 < h.size_of_image <= MAX_IMAGE_SIZE else None
