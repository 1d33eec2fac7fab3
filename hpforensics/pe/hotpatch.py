"""Hot patch records of a patch image, its patch tables, and the HPAT the kernel builds.

Layout (see docs/hotpatch-format.md for sources): the load config's HotPatchTableOffset is the
RVA of IMAGE_HOT_PATCH_INFO; BaseImageList, each base's PatchTable and CodeIntegrityInfo are
offsets from that INFO. A patch table is a run of chunks — a DWORD header (type, count,
INVERSE/OBLIGATORY bits) then `count` entries of 2 + ExtraPatchSize DWORDs — ended by a 0
header. Entry DWORD 0 is the RVA written in the image the chunk applies to (base image for
forward chunks, patch image for INVERSE chunks), DWORD 1 the RVA in the other image.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

from hpforensics.pe.reader import RvaReader
from hpforensics.pe.structures import (
    CHUNK_EXTENT_X64,
    CHUNK_INVERSE,
    CHUNK_OBLIGATORY,
    CHUNK_SIZE,
    CHUNK_TYPE,
    HPAT_ENTRY_SIZE,
    HPAT_SLOT_DISTANCE,
    HPAT_STUB_X64,
    MACHINE_AMD64,
    MACHINE_ARM64,
    MACHINE_I386,
    ChunkType,
    c_pe,
    hpat_entry_offset,
    hpat_index,
)

log = logging.getLogger(__name__)

MAX_BASES = 256
MAX_ENTRIES = 1 << 18  # per patch table
MAX_EXTRA = 64  # ExtraPatchSize DWORDs per entry


@dataclass(frozen=True)
class PatchEntry:
    kind: str  # "function", "absolute", "rel32", "call_target", "indirect", ...
    chunk_type: int
    inverse: bool  # True: written into the patch image, source in the base image
    obligatory: bool
    base_rva: int  # RVA in the base image
    patch_rva: int  # RVA in the patch image
    extra: tuple[int, ...] = ()  # ExtraPatchSize DWORDs (FUNCTION: first bytes of the original)

    @property
    def target_image(self) -> str:
        return "patch" if self.inverse else "base"

    @property
    def write_rva(self) -> int:
        return self.patch_rva if self.inverse else self.base_rva

    def write_range(self, machine: int = MACHINE_AMD64) -> tuple[int, int] | None:
        """(rva, size) the kernel writes for this entry, per RtlpDetermineHotPatchExtent."""
        try:
            off, size = CHUNK_EXTENT_X64[ChunkType(self.chunk_type)]
        except (KeyError, ValueError):
            return None
        if self.chunk_type == ChunkType.FUNCTION and machine == MACHINE_ARM64:
            off = 0  # ARM64: the branch is written at F itself
        elif (self.chunk_type not in (ChunkType.FUNCTION, ChunkType.REL32)
              and machine == MACHINE_I386):
            size = 4  # pointer-sized writes
        return self.write_rva + off, size

    @property
    def expected_first_bytes(self) -> bytes | None:
        if self.chunk_type == ChunkType.FUNCTION and self.extra:
            return struct.pack("<I", self.extra[0])[:2]
        return None


@dataclass
class HotPatchBase:
    sequence_number: int
    flags: int
    original_timestamp: int
    original_checksum: int
    code_integrity_info: int
    code_integrity_size: int
    patch_table_offset: int
    buffer_offset: int
    patch_table: list[PatchEntry] = field(default_factory=list)
    sha256: bytes = b""
    sha1: bytes = b""

    @property
    def functions(self) -> list[PatchEntry]:
        return [e for e in self.patch_table if e.chunk_type == ChunkType.FUNCTION and not e.inverse]

    def matches(self, timestamp: int, checksum: int) -> bool:
        return self.original_timestamp == timestamp and self.original_checksum == checksum


@dataclass
class HotPatchInfo:
    rva: int
    version: int
    size: int
    sequence_number: int
    base_image_list: int
    base_image_count: int
    buffer_offset: int
    extra_patch_size: int
    bases: list[HotPatchBase] = field(default_factory=list)

    @property
    def entry_dwords(self) -> int:
        """DWORDs per patch-table entry: 2, plus ExtraPatchSize from version 3 on."""
        return 2 + (self.extra_patch_size if self.version >= 3 else 0)

    def base_for(self, timestamp: int, checksum: int) -> HotPatchBase | None:
        return next((b for b in self.bases if b.matches(timestamp, checksum)), None)


def _kind(chunk_type: int) -> str:
    try:
        return ChunkType(chunk_type).name.lower()
    except ValueError:
        return f"unknown_{chunk_type:#x}"


def parse_patch_table(reader: RvaReader, rva: int, entry_dwords: int,
                      source: int | None = None) -> list[PatchEntry]:
    """`source`: RVA of the PatchTable field, named in errors when the table is not in the file."""
    entries: list[PatchEntry] = []
    cur = rva
    while True:
        header = reader.u32(cur, "patch table chunk header", source)
        cur += 4
        if header == 0:
            return entries
        count = header & CHUNK_SIZE
        ctype = header & CHUNK_TYPE
        inverse = bool(header & CHUNK_INVERSE)
        if len(entries) + count > MAX_ENTRIES:
            raise reader.error("patch table has too many entries", reader.where(cur - 4))
        raw = reader.read(cur, count * entry_dwords * 4, "patch table entries", source)
        for i in range(count):
            words = struct.unpack_from(f"<{entry_dwords}I", raw, i * entry_dwords * 4)
            here, other = words[0], words[1]
            entries.append(PatchEntry(
                kind=_kind(ctype), chunk_type=ctype, inverse=inverse,
                obligatory=bool(header & CHUNK_OBLIGATORY),
                base_rva=other if inverse else here, patch_rva=here if inverse else other,
                extra=tuple(words[2:]),
            ))
        cur += count * entry_dwords * 4


def parse_hotpatch(reader: RvaReader, rva: int, source: int | None = None) -> HotPatchInfo:
    """`source`: RVA of the load config's HotPatchTableOffset, for errors outside the file."""
    full = len(c_pe.IMAGE_HOT_PATCH_INFO)
    version = reader.u32(rva, "IMAGE_HOT_PATCH_INFO.Version", source)
    if version == 0:
        raise reader.error("IMAGE_HOT_PATCH_INFO version 0", reader.where(rva))
    known = 20 if version == 1 else 24 if version == 2 else full
    raw = reader.read(rva, known, "IMAGE_HOT_PATCH_INFO", source)
    hp = c_pe.IMAGE_HOT_PATCH_INFO(raw + bytes(full - known))
    if version > 3:
        log.info("%s: IMAGE_HOT_PATCH_INFO version %d is newer than 3; read as 3", reader.path,
                 version)
    if hp.BaseImageCount > MAX_BASES:
        raise reader.error(f"BaseImageCount {hp.BaseImageCount} is implausible",
                           reader.where(rva + 16))
    if hp.ExtraPatchSize > MAX_EXTRA and version >= 3:
        raise reader.error(f"ExtraPatchSize {hp.ExtraPatchSize} is implausible",
                           reader.where(rva + 24))
    info = HotPatchInfo(rva, version, hp.Size, hp.SequenceNumber, hp.BaseImageList,
                        hp.BaseImageCount, hp.BufferOffset, hp.ExtraPatchSize)
    offsets = reader.read(rva + hp.BaseImageList, 4 * hp.BaseImageCount,
                          "hot patch base image list", rva + 12)
    bsize = len(c_pe.IMAGE_HOT_PATCH_BASE)
    for i, (boff,) in enumerate(struct.iter_unpack("<I", offsets)):
        at = rva + boff
        b = c_pe.IMAGE_HOT_PATCH_BASE(reader.read(at, bsize, "IMAGE_HOT_PATCH_BASE",
                                                  rva + hp.BaseImageList + 4 * i))
        base = HotPatchBase(b.SequenceNumber, b.Flags, b.OriginalTimeDateStamp, b.OriginalCheckSum,
                            b.CodeIntegrityInfo, b.CodeIntegritySize, b.PatchTable, b.BufferOffset)
        if b.CodeIntegrityInfo and b.CodeIntegritySize >= len(c_pe.IMAGE_HOT_PATCH_HASHES):
            h = c_pe.IMAGE_HOT_PATCH_HASHES(reader.read(rva + b.CodeIntegrityInfo,
                                                        len(c_pe.IMAGE_HOT_PATCH_HASHES),
                                                        "IMAGE_HOT_PATCH_HASHES", at + 16))
            base.sha256, base.sha1 = bytes(h.SHA256), bytes(h.SHA1)
        if b.PatchTable:
            base.patch_table = parse_patch_table(reader, rva + b.PatchTable, info.entry_dwords,
                                                 at + 24)
        info.bases.append(base)
    return info


# ---------------------------------------------------------------- HPAT (in memory only)
@dataclass(frozen=True)
class HpatEntry:
    index: int
    stub_address: int
    slot_address: int
    target: int  # the pointer the stub jumps through (0 if the slot is empty)
    stub_ok: bool  # stub bytes are exactly the x64 form the kernel writes


def hpat_stub_address(hpat: int, index: int) -> int:
    return hpat + hpat_entry_offset(index)


def decode_hpat_entry(hpat: int, address: int, read) -> HpatEntry | None:
    """Decode the stub at `address` in an HPAT starting at `hpat`; `read(addr, n)` -> bytes|None."""
    index = hpat_index(address - hpat)
    if index is None:
        return None
    stub = read(address, HPAT_ENTRY_SIZE)
    slot = read(address + HPAT_SLOT_DISTANCE, 8)
    target = struct.unpack("<Q", slot)[0] if slot and len(slot) == 8 else 0
    return HpatEntry(index, address, address + HPAT_SLOT_DISTANCE, target, stub == HPAT_STUB_X64)


def iter_hpat(hpat: int, count: int, read):
    """Every entry of an HPAT with `count` stubs (bounded by the caller's count)."""
    for i in range(count):
        entry = decode_hpat_entry(hpat, hpat_stub_address(hpat, i), read)
        if entry is not None:
            yield entry
