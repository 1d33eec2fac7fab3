"""PEImage: one PE file or mapped module, its loader-relevant metadata, read-only.

pefile parses the headers, sections, imports, exports and base relocations; this package
parses what pefile does not (load config of every size, dynamic relocations v1/v2, hot patch
records, CFG tables) through the declarations in structures.py. `mapped=True` reads a memory
layout (file offset == RVA), which is how memory-image and live sources hand us modules.
"""
from __future__ import annotations

import logging
import mmap
import os
import struct
import warnings
from dataclasses import dataclass
from functools import cached_property

import pefile

from hpforensics.errors import InputError
from hpforensics.evidence import map_evidence
from hpforensics.pe import directories
from hpforensics.pe.directories import CodeView, ImportSlot
from hpforensics.pe.dynreloc import (DynamicRelocation, DynamicRelocationTable,
                                     parse_dynamic_relocations, table_rva)
from hpforensics.pe.hotpatch import HotPatchInfo, parse_hotpatch
from hpforensics.pe.loadconfig import (GuardFunction, LoadConfig, parse_guard_cf_functions,
                                       parse_load_config)
from hpforensics.pe.reader import RvaReader, Section
from hpforensics.pe.structures import (
    IMAGE_DLLCHARACTERISTICS_EX_HOTPATCH_COMPATIBLE,
    MACHINE_AMD64,
    MACHINE_ARM64,
    MACHINE_I386,
)

log = logging.getLogger(__name__)

MAX_SECTIONS = 96  # the loader's own limit


@dataclass(frozen=True)
class LoaderRange:
    """Bytes the loader (or kernel) legitimately writes after mapping: masked in comparisons."""

    rva: int
    size: int
    kind: str  # "reloc", "iat", "delay_iat", "cfg_pointer", "security_cookie", dynamic kinds


def _as_mapped_file(data: bytes | bytearray | memoryview | mmap.mmap, path: str) -> bytearray:
    """A copy whose section headers say raw data == virtual address, so pefile reads RVAs."""
    buf = bytearray(data)
    try:
        lfanew = struct.unpack_from("<I", buf, 0x3C)[0]
        nsec, opt = struct.unpack_from("<H12xH", buf, lfanew + 6)
    except struct.error:
        raise InputError(path, "too short for a PE header", 0) from None
    table = lfanew + 24 + opt
    for i in range(min(nsec, MAX_SECTIONS)):
        at = table + 40 * i
        if at + 40 > len(buf):
            raise InputError(path, "section table runs past the end of the image", at)
        vsize, va = struct.unpack_from("<II", buf, at + 8)
        size = max(0, min(max(vsize, 1), len(buf) - va))
        struct.pack_into("<II", buf, at + 16, size, va)
    return buf


class PEImage:
    """Metadata of one image. Construct with from_file / from_bytes."""

    def __init__(self, data: bytes | bytearray | memoryview | mmap.mmap, name: str, mapped: bool,
                 strict: bool, base: int | None = None) -> None:
        self.path = name
        self.mapped = mapped
        self.data = data
        self.problems: list[InputError] = []  # non-fatal directory errors when strict=False
        self._strict = strict
        view = _as_mapped_file(data, name) if mapped else data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.pe = pefile.PE(data=bytes(view) if isinstance(view, memoryview) else view,
                                    fast_load=True)
            except pefile.PEFormatError as exc:
                raise InputError(name, f"not a PE image: {exc.value}",
                                 _pefile_offset(exc.value)) from None
        pe = self.pe
        self.is64 = pe.PE_TYPE == pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS
        self.machine = pe.FILE_HEADER.Machine
        self.timestamp = pe.FILE_HEADER.TimeDateStamp
        self.checksum = pe.OPTIONAL_HEADER.CheckSum
        self.size_of_image = pe.OPTIONAL_HEADER.SizeOfImage
        self.image_base = pe.OPTIONAL_HEADER.ImageBase
        # Pointer fields (load config, CFG) hold VAs: relative to where the image is mapped. The
        # memory manager rewrites ImageBase in a relocated image's header, so the header is right
        # unless the caller knows better (a header read before relocation, a carved module).
        self.va_base = base if base is not None else self.image_base
        self.subsystem = pe.OPTIONAL_HEADER.Subsystem
        self.dll_characteristics = pe.OPTIONAL_HEADER.DllCharacteristics
        self.entry_point = pe.OPTIONAL_HEADER.AddressOfEntryPoint
        self.is_dll = pe.is_dll()
        # the header's count, not what pefile read (it stops quietly at the first bad entry)
        nsec = max(pe.FILE_HEADER.NumberOfSections, len(pe.sections))
        if nsec > MAX_SECTIONS:
            raise InputError(name, f"NumberOfSections {nsec} exceeds the loader's limit of "
                                   f"{MAX_SECTIONS}", pe.FILE_HEADER.get_file_offset() + 2)
        self.sections = [
            Section(s.Name.rstrip(b"\0").decode("latin-1"), s.VirtualAddress, s.Misc_VirtualSize,
                    # the loader rounds PointerToRawData down to 512 (as pefile does)
                    s.get_PointerToRawData_adj() if not mapped else s.VirtualAddress,
                    s.SizeOfRawData, s.Characteristics)
            for s in pe.sections
        ]
        self._check_layout()
        self.reader = RvaReader(view, name, self.sections, pe.OPTIONAL_HEADER.SizeOfHeaders, mapped,
                                 self.size_of_image)
        self._parse()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, strict: bool = True) -> "PEImage":
        data = map_evidence(path)
        return cls(data, str(path), mapped=False, strict=strict)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, name: str = "<bytes>",
                   mapped: bool = False, *, strict: bool = True,
                   base: int | None = None) -> "PEImage":
        """`base`: the address the bytes were mapped at, when VAs inside must be read against it."""
        return cls(data, name, mapped=mapped, strict=strict, base=base)

    def _check_layout(self) -> None:
        size = len(self.data)
        hdr_at = self.pe.sections[0].get_file_offset() if self.pe.sections else 0
        for i, s in enumerate(self.sections):
            if self.mapped:
                if s.rva >= size and s.virtual_size:
                    raise InputError(self.path,
                                     f"section {s.name} starts past the end of the image",
                                     hdr_at + 40 * i)
            elif s.raw_size and s.raw_offset + s.raw_size > size:
                raise InputError(
                    self.path,
                    f"section {s.name} raw data ends at {s.raw_offset + s.raw_size:#x}, "
                    f"past the end of the file ({size:#x} bytes): truncated?",
                    hdr_at + 40 * i,
                )

    def _guard(self, what: str, fn, default):
        """Run one directory parser; in non-strict mode keep going past a corrupt directory."""
        try:
            return fn()
        except InputError as exc:
            if self._strict:
                raise
            log.warning("%s: %s unreadable: %s", self.path, what, exc)
            self.problems.append(exc)
            return default

    def _parse(self) -> None:
        self.load_config: LoadConfig | None = self._guard("load config", self._load_config, None)
        lc = self.load_config
        self.dynamic_relocation_table: DynamicRelocationTable | None = None
        self.hotpatch: HotPatchInfo | None = None
        self.guard_functions: list[GuardFunction] = []
        if lc is not None:
            self.dynamic_relocation_table = self._guard("dynamic relocations",
                                                        self._dynamic_relocations, None)
            if lc.hot_patch_table_offset:
                self.hotpatch = self._guard("hot patch info", lambda: parse_hotpatch(
                    self.reader, lc.hot_patch_table_offset,
                    lc.field_rva("HotPatchTableOffset")), None)
            self.guard_functions = self._guard(
                "CFG function table",
                lambda: parse_guard_cf_functions(self.reader, lc, self.va_base), [])
        self.exports: dict[int, str] = self._guard("exports", lambda: directories.exports(self), {})
        self.imports: list[ImportSlot] = self._guard("imports",
                                                     lambda: directories.imports(self), [])
        self.base_relocations: list[tuple[int, int]] = self._guard(
            "base relocations", lambda: directories.base_relocations(self), [])
        self.codeview: CodeView | None = None
        self.ex_dll_characteristics: int | None = None
        self.codeview, self.ex_dll_characteristics = self._guard(
            "debug directory", lambda: directories.debug(self), (None, None))

    def _dynamic_relocations(self) -> DynamicRelocationTable | None:
        lc = self.load_config
        assert lc is not None
        rva = table_rva(lc, self.sections, self.va_base)
        if rva == -1:
            field_rva = lc.field_rva("DynamicValueRelocTableSection") or lc.rva
            raise InputError(self.path, "DynamicValueRelocTableSection names no section",
                             self.reader.where(field_rva))
        source = (lc.field_rva("DynamicValueRelocTableOffset")
                  or lc.field_rva("DynamicValueRelocTable"))
        if rva is None:
            return None
        return parse_dynamic_relocations(self.reader, rva, self.is64, source)

    def _load_config(self) -> LoadConfig | None:
        d = self.pe.OPTIONAL_HEADER.DATA_DIRECTORY
        if len(d) <= 10 or not d[10].VirtualAddress:
            return None
        return parse_load_config(self.reader, d[10].VirtualAddress, self.is64,
                                 self.data_directory_field(10))

    # ------------------------------------------------------------------ derived views
    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def machine_name(self) -> str:
        return {MACHINE_AMD64: "AMD64", MACHINE_I386: "I386", MACHINE_ARM64: "ARM64"}.get(
            self.machine, f"{self.machine:#x}")

    @property
    def pointer_size(self) -> int:
        return 8 if self.is64 else 4

    @property
    def dynamic_relocations(self) -> list[DynamicRelocation]:
        t = self.dynamic_relocation_table
        return list(t.relocations) if t else []

    @property
    def hotpatch_capable(self) -> bool:
        """Built to be hot patched: EX_DLLCHARACTERISTICS carries HOTPATCH_COMPATIBLE (0x80)."""
        flags = self.ex_dll_characteristics or 0
        return bool(flags & IMAGE_DLLCHARACTERISTICS_EX_HOTPATCH_COMPATIBLE)

    @property
    def is_patch_image(self) -> bool:
        return self.hotpatch is not None

    @cached_property
    def iat_ranges(self) -> list[tuple[int, int]]:
        """Merged (start, end) RVA ranges of IAT slots (normal and delay-load)."""
        return _merge((s.rva, s.rva + s.size) for s in self.imports)

    def cfg_pointer_slots(self) -> list[tuple[str, int]]:
        """(field name, RVA of the pointer it holds) for CFG/XFG check and dispatch pointers."""
        lc = self.load_config
        out: list[tuple[str, int]] = []
        if lc is None:
            return out
        for f in ("GuardCFCheckFunctionPointer", "GuardCFDispatchFunctionPointer",
                  "GuardXFGCheckFunctionPointer", "GuardXFGDispatchFunctionPointer",
                  "GuardXFGTableDispatchFunctionPointer", "GuardMemcpyFunctionPointer"):
            va = lc.get(f)
            if va:
                out.append((f, va - self.va_base))
        return out

    def loader_ranges(self) -> list[LoaderRange]:
        """Every byte range the loader may write after mapping, sorted by RVA."""
        ps = self.pointer_size
        rel_size = {10: 8, 3: 4, 1: 2, 2: 2, 4: 2, 5: 4, 7: 4, 8: 4, 9: 8}
        out = [LoaderRange(rva, rel_size.get(t, ps), "reloc")
               for rva, t in self.base_relocations if t]
        out += [LoaderRange(s.rva, s.size, "delay_iat" if s.delay else "iat") for s in self.imports]
        out += [LoaderRange(rva, ps, "cfg_pointer") for _, rva in self.cfg_pointer_slots()]
        lc = self.load_config
        if lc is not None and lc.get("SecurityCookie"):
            out.append(LoaderRange(lc.get("SecurityCookie") - self.va_base, ps, "security_cookie"))
        out.append(LoaderRange(self.image_base_field_offset, ps, "header_image_base"))
        out += [LoaderRange(d.rva, d.size, d.kind) for d in self.dynamic_relocations]
        return sorted(out, key=lambda r: (r.rva, r.size))

    def data_directory_field(self, index: int) -> int:
        """RVA (== file offset: headers) of DataDirectory[index], named when it points nowhere."""
        return self.pe.OPTIONAL_HEADER.get_file_offset() + (112 if self.is64 else 96) + 8 * index

    @property
    def image_base_field_offset(self) -> int:
        """RVA of OptionalHeader.ImageBase, which the memory manager rewrites when it relocates."""
        return self.pe.OPTIONAL_HEADER.get_file_offset() + (24 if self.is64 else 28)

    def read(self, rva: int, size: int) -> bytes:
        return self.reader.read(rva, size, "data")

    def function_name(self, rva: int) -> str:
        return self.exports.get(rva, "")

    def compute_checksum(self) -> int:
        """The PE checksum of the file bytes (only meaningful for a file layout)."""
        from hpforensics.pe.checksum import pe_checksum

        return pe_checksum(self.data, self.pe.OPTIONAL_HEADER.get_file_offset() + 0x40)


def _merge(ranges) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


def _pefile_offset(message: str) -> int:
    """Where pefile's header complaints point: DOS magic at 0, e_lfanew at 0x3C."""
    m = message.lower()
    if "e_lfanew" in m or "nt headers" in m or "nt_headers" in m or "signature" in m:
        return 0x3C
    if "optional header" in m:
        return 0x3C
    return 0
