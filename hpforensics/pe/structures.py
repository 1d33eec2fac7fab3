"""PE structures pefile does not cover, declared once (dissect.cstruct) with their constants.

Everything that reads or writes these structures — the parser in this package and the sample
builder in samples/build_pe.py — goes through the declarations below, so a layout lives in one
place. Sources for each layout are in docs/hotpatch-format.md.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from dissect.cstruct import cstruct

_DEFS = """
/* IMAGE_LOAD_CONFIG_DIRECTORY64, Windows SDK 10.0.26100 winnt.h (fields in declaration order). */
struct IMAGE_LOAD_CONFIG_DIRECTORY64 {
    uint32  Size;
    uint32  TimeDateStamp;
    uint16  MajorVersion;
    uint16  MinorVersion;
    uint32  GlobalFlagsClear;
    uint32  GlobalFlagsSet;
    uint32  CriticalSectionDefaultTimeout;
    uint64  DeCommitFreeBlockThreshold;
    uint64  DeCommitTotalFreeThreshold;
    uint64  LockPrefixTable;
    uint64  MaximumAllocationSize;
    uint64  VirtualMemoryThreshold;
    uint64  ProcessAffinityMask;
    uint32  ProcessHeapFlags;
    uint16  CSDVersion;
    uint16  DependentLoadFlags;
    uint64  EditList;
    uint64  SecurityCookie;
    uint64  SEHandlerTable;
    uint64  SEHandlerCount;
    uint64  GuardCFCheckFunctionPointer;
    uint64  GuardCFDispatchFunctionPointer;
    uint64  GuardCFFunctionTable;
    uint64  GuardCFFunctionCount;
    uint32  GuardFlags;
    uint16  CodeIntegrityFlags;
    uint16  CodeIntegrityCatalog;
    uint32  CodeIntegrityCatalogOffset;
    uint32  CodeIntegrityReserved;
    uint64  GuardAddressTakenIatEntryTable;
    uint64  GuardAddressTakenIatEntryCount;
    uint64  GuardLongJumpTargetTable;
    uint64  GuardLongJumpTargetCount;
    uint64  DynamicValueRelocTable;
    uint64  CHPEMetadataPointer;
    uint64  GuardRFFailureRoutine;
    uint64  GuardRFFailureRoutineFunctionPointer;
    uint32  DynamicValueRelocTableOffset;
    uint16  DynamicValueRelocTableSection;
    uint16  Reserved2;
    uint64  GuardRFVerifyStackPointerFunctionPointer;
    uint32  HotPatchTableOffset;
    uint32  Reserved3;
    uint64  EnclaveConfigurationPointer;
    uint64  VolatileMetadataPointer;
    uint64  GuardEHContinuationTable;
    uint64  GuardEHContinuationCount;
    uint64  GuardXFGCheckFunctionPointer;
    uint64  GuardXFGDispatchFunctionPointer;
    uint64  GuardXFGTableDispatchFunctionPointer;
    uint64  CastGuardOsDeterminedFailureMode;
    uint64  GuardMemcpyFunctionPointer;
    uint64  UmaFunctionPointers;
};

/* IMAGE_LOAD_CONFIG_DIRECTORY32: same fields, pointers 4 bytes, heap flags before affinity. */
struct IMAGE_LOAD_CONFIG_DIRECTORY32 {
    uint32  Size;
    uint32  TimeDateStamp;
    uint16  MajorVersion;
    uint16  MinorVersion;
    uint32  GlobalFlagsClear;
    uint32  GlobalFlagsSet;
    uint32  CriticalSectionDefaultTimeout;
    uint32  DeCommitFreeBlockThreshold;
    uint32  DeCommitTotalFreeThreshold;
    uint32  LockPrefixTable;
    uint32  MaximumAllocationSize;
    uint32  VirtualMemoryThreshold;
    uint32  ProcessHeapFlags;
    uint32  ProcessAffinityMask;
    uint16  CSDVersion;
    uint16  DependentLoadFlags;
    uint32  EditList;
    uint32  SecurityCookie;
    uint32  SEHandlerTable;
    uint32  SEHandlerCount;
    uint32  GuardCFCheckFunctionPointer;
    uint32  GuardCFDispatchFunctionPointer;
    uint32  GuardCFFunctionTable;
    uint32  GuardCFFunctionCount;
    uint32  GuardFlags;
    uint16  CodeIntegrityFlags;
    uint16  CodeIntegrityCatalog;
    uint32  CodeIntegrityCatalogOffset;
    uint32  CodeIntegrityReserved;
    uint32  GuardAddressTakenIatEntryTable;
    uint32  GuardAddressTakenIatEntryCount;
    uint32  GuardLongJumpTargetTable;
    uint32  GuardLongJumpTargetCount;
    uint32  DynamicValueRelocTable;
    uint32  CHPEMetadataPointer;
    uint32  GuardRFFailureRoutine;
    uint32  GuardRFFailureRoutineFunctionPointer;
    uint32  DynamicValueRelocTableOffset;
    uint16  DynamicValueRelocTableSection;
    uint16  Reserved2;
    uint32  GuardRFVerifyStackPointerFunctionPointer;
    uint32  HotPatchTableOffset;
    uint32  Reserved3;
    uint32  EnclaveConfigurationPointer;
    uint32  VolatileMetadataPointer;
    uint32  GuardEHContinuationTable;
    uint32  GuardEHContinuationCount;
    uint32  GuardXFGCheckFunctionPointer;
    uint32  GuardXFGDispatchFunctionPointer;
    uint32  GuardXFGTableDispatchFunctionPointer;
    uint32  CastGuardOsDeterminedFailureMode;
    uint32  GuardMemcpyFunctionPointer;
    uint32  UmaFunctionPointers;
};

/* Hot patch records (winnt.h). Offsets inside them are relative to IMAGE_HOT_PATCH_INFO. */
struct IMAGE_HOT_PATCH_INFO {
    uint32  Version;
    uint32  Size;
    uint32  SequenceNumber;
    uint32  BaseImageList;      /* -> uint32[BaseImageCount], each -> IMAGE_HOT_PATCH_BASE */
    uint32  BaseImageCount;
    uint32  BufferOffset;       /* version 2+ */
    uint32  ExtraPatchSize;     /* version 3+: extra DWORDs per patch-table entry */
};

struct IMAGE_HOT_PATCH_BASE {
    uint32  SequenceNumber;
    uint32  Flags;
    uint32  OriginalTimeDateStamp;
    uint32  OriginalCheckSum;
    uint32  CodeIntegrityInfo;
    uint32  CodeIntegritySize;
    uint32  PatchTable;
    uint32  BufferOffset;       /* version 2+ */
};

struct IMAGE_HOT_PATCH_HASHES {
    uint8   SHA256[32];
    uint8   SHA1[20];
};

/* Dynamic value relocation table (winnt.h). */
struct IMAGE_DYNAMIC_RELOCATION_TABLE {
    uint32  Version;
    uint32  Size;
};

struct IMAGE_DYNAMIC_RELOCATION32 {
    uint32  Symbol;
    uint32  BaseRelocSize;
};

struct IMAGE_DYNAMIC_RELOCATION64 {
    uint64  Symbol;
    uint32  BaseRelocSize;
};

struct IMAGE_DYNAMIC_RELOCATION32_V2 {
    uint32  HeaderSize;
    uint32  FixupInfoSize;
    uint32  Symbol;
    uint32  SymbolGroup;
    uint32  Flags;
};

struct IMAGE_DYNAMIC_RELOCATION64_V2 {
    uint32  HeaderSize;
    uint32  FixupInfoSize;
    uint64  Symbol;
    uint32  SymbolGroup;
    uint32  Flags;
};

struct IMAGE_BASE_RELOCATION {
    uint32  VirtualAddress;
    uint32  SizeOfBlock;
};

struct IMAGE_PROLOGUE_DYNAMIC_RELOCATION_HEADER {
    uint8   PrologueByteCount;
};

struct IMAGE_EPILOGUE_DYNAMIC_RELOCATION_HEADER {
    uint32  EpilogueCount;
    uint8   EpilogueByteCount;
    uint8   BranchDescriptorElementSize;
    uint16  BranchDescriptorCount;
};

struct IMAGE_FUNCTION_OVERRIDE_HEADER {
    uint32  FuncOverrideSize;
};

struct IMAGE_FUNCTION_OVERRIDE_DYNAMIC_RELOCATION {
    uint32  OriginalRva;
    uint32  BDDOffset;
    uint32  RvaSize;
    uint32  BaseRelocSize;
};

struct IMAGE_BDD_INFO {
    uint32  Version;
    uint32  BDDSize;
};

struct IMAGE_BDD_DYNAMIC_RELOCATION {
    uint16  Left;
    uint16  Right;
    uint32  Value;
};

/* CodeView RSDS record (debug directory type 2). */
struct CV_INFO_PDB70 {
    char    Signature[4];
    uint8   Guid[16];
    uint32  Age;
};
"""

c_pe = cstruct().load(_DEFS)

# --- hot patch constants (winnt.h) ---
HOT_PATCH_BASE_OBLIGATORY = 0x1
HOT_PATCH_BASE_CAN_ROLL_BACK = 0x2
HOT_PATCH_BASE_MACHINE_I386 = 0x4
HOT_PATCH_BASE_MACHINE_ARM64 = 0x8
HOT_PATCH_BASE_MACHINE_AMD64 = 0x10
HOT_PATCH_INFO_FLAG_HOTSWAP = 0x2

CHUNK_INVERSE = 0x80000000
CHUNK_OBLIGATORY = 0x40000000
CHUNK_RESERVED = 0x3FF03000
CHUNK_TYPE = 0x000FC000
CHUNK_SOURCE_RVA = 0x00008000
CHUNK_TARGET_RVA = 0x00004000
CHUNK_SIZE = 0x00000FFF


class ChunkType(enum.IntEnum):
    NONE = 0x00000
    FUNCTION = 0x1C000
    ABSOLUTE = 0x2C000
    REL32 = 0x3C000
    CALL_TARGET = 0x44000
    INDIRECT = 0x5C000
    NO_CALL_TARGET = 0x64000
    DYNAMIC_VALUE = 0x78000


# Bytes the kernel writes per entry, as (offset from the entry's RVA, size) for x64/ARM64 images.
# From the kernel's own extent function (see docs); NO_CALL_TARGET writes nothing.
CHUNK_EXTENT_X64 = {
    ChunkType.FUNCTION: (-6, 8),
    ChunkType.ABSOLUTE: (0, 8),
    ChunkType.REL32: (0, 4),
    ChunkType.CALL_TARGET: (0, 8),
    ChunkType.INDIRECT: (0, 8),
    ChunkType.DYNAMIC_VALUE: (0, 8),
}

# --- hotpatch redirect forms (docs/hotpatch-format.md, "Redirect and HPAT") ---
@dataclass(frozen=True)
class RedirectForm:
    """What the kernel writes for a redirected function F: `entry` at F (a short jmp back)
    and a jump of `jump_opcode` + rel32/disp32 at F + `jump_at` (in the padding)."""

    name: str
    entry: bytes
    jump_opcode: bytes
    jump_at: int

    @property
    def jump_size(self) -> int:
        return len(self.jump_opcode) + 4

    def encode(self, rel: int) -> bytes:
        """The whole window [F + jump_at, F + 2) for a rel32/disp32 `rel`."""
        return self.jump_opcode + struct.pack("<i", rel) + self.entry


REDIRECT_NEAR = RedirectForm("E9 rel32 + EB F9", b"\xeb\xf9", b"\xe9", -5)  # newer builds
REDIRECT_FAR = RedirectForm("FF 25 disp32 + EB F8", b"\xeb\xf8", b"\xff\x25", -6)  # older
REDIRECT_FORMS = (REDIRECT_NEAR, REDIRECT_FAR)
REDIRECT_WINDOW = (-6, 2)  # the kernel writes [F-6, F+2) (RtlpDetermineHotPatchExtent)


def redirect_entry_form(buf: bytes | bytearray, f_off: int) -> RedirectForm | None:
    """The form whose entry bytes stand at `f_off` (the jump before it is not checked)."""
    entry = bytes(buf[f_off : f_off + 2])
    return next((f for f in REDIRECT_FORMS if f.entry == entry), None)


def redirect_form_at(buf: bytes | bytearray, f_off: int) -> RedirectForm | None:
    """The form whose entry bytes and matching jump both stand at `f_off`."""
    form = redirect_entry_form(buf, f_off)
    if form is None or f_off + form.jump_at < 0:
        return None
    at = f_off + form.jump_at
    return form if bytes(buf[at : at + len(form.jump_opcode)]) == form.jump_opcode else None


# --- HPAT (hot patch address table) ---
HPAT_STUB_X64 = bytes.fromhex("FF25FA0F0000CCCC")  # jmp qword ptr [rip+0xFFA]; int3; int3
HPAT_ENTRY_SIZE = 8
HPAT_ENTRIES_PER_PAGE = 512
HPAT_SLOT_DISTANCE = 0x1000  # pointer slot sits one page after its stub


def hpat_entry_offset(index: int) -> int:
    """Offset of stub `index` from the HPAT start: stub pages alternate with pointer pages."""
    return (index >> 9) * 0x2000 + (index & 0x1FF) * HPAT_ENTRY_SIZE


def hpat_index(offset: int) -> int | None:
    """Inverse of hpat_entry_offset; None if `offset` is not the start of a stub."""
    if offset < 0 or offset % HPAT_ENTRY_SIZE or (offset % 0x2000) >= 0x1000:
        return None
    return (offset >> 13 << 9) + ((offset >> 3) & 0x1FF)


# --- dynamic value relocation symbols (winnt.h) ---
class DynRelocSymbol(enum.IntEnum):
    GUARD_RF_PROLOGUE = 1
    GUARD_RF_EPILOGUE = 2
    GUARD_IMPORT_CONTROL_TRANSFER = 3
    GUARD_INDIR_CONTROL_TRANSFER = 4
    GUARD_SWITCHTABLE_BRANCH = 5
    ARM64X = 6
    FUNCTION_OVERRIDE = 7
    ARM64_KERNEL_IMPORT_CALL_TRANSFER = 8


class FunctionOverrideKind(enum.IntEnum):
    INVALID = 0
    X64_REL32 = 1
    ARM64_BRANCH26 = 2
    ARM64_THUNK = 3


ARM64X_FIXUP_ZEROFILL = 0
ARM64X_FIXUP_VALUE = 1
ARM64X_FIXUP_DELTA = 2

# --- misc header constants ---
IMAGE_DLLCHARACTERISTICS_EX_HOTPATCH_COMPATIBLE = 0x80
IMAGE_DEBUG_TYPE_CODEVIEW = 2
IMAGE_DEBUG_TYPE_EX_DLLCHARACTERISTICS = 20
IMAGE_GUARD_CF_FUNCTION_TABLE_SIZE_MASK = 0xF0000000
IMAGE_GUARD_CF_FUNCTION_TABLE_SIZE_SHIFT = 28
MACHINE_I386 = 0x14C
MACHINE_AMD64 = 0x8664
MACHINE_ARM64 = 0xAA64
