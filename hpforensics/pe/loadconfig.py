"""Load configuration directory of any size (32- and 64-bit) and the CFG tables it points to."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hpforensics.errors import InputError
from hpforensics.pe.reader import RvaReader
from hpforensics.pe.structures import (
    IMAGE_GUARD_CF_FUNCTION_TABLE_SIZE_MASK,
    IMAGE_GUARD_CF_FUNCTION_TABLE_SIZE_SHIFT,
    c_pe,
)

log = logging.getLogger(__name__)

# A CFG function table larger than this is treated as corrupt (ntoskrnl has ~40k entries).
MAX_CFG_FUNCTIONS = 1 << 20

# Fields holding virtual addresses (VA = ImageBase + RVA); the loader relocates them.
POINTER_FIELDS = (
    "SecurityCookie",
    "GuardCFCheckFunctionPointer",
    "GuardCFDispatchFunctionPointer",
    "GuardCFFunctionTable",
    "GuardXFGCheckFunctionPointer",
    "GuardXFGDispatchFunctionPointer",
    "GuardXFGTableDispatchFunctionPointer",
    "GuardMemcpyFunctionPointer",
    "GuardRFFailureRoutineFunctionPointer",
    "GuardRFVerifyStackPointerFunctionPointer",
)


@dataclass
class LoadConfig:
    """The fields this image's Size covers; absent (newer) fields are simply not in `fields`."""

    rva: int
    size: int  # the structure's own Size field
    is64: bool
    fields: dict[str, int] = field(default_factory=dict)

    def get(self, name: str, default: int = 0) -> int:
        return self.fields.get(name, default)

    @property
    def guard_flags(self) -> int:
        return self.get("GuardFlags")

    @property
    def hot_patch_table_offset(self) -> int:
        return self.get("HotPatchTableOffset")

    @property
    def dynamic_value_reloc_table_offset(self) -> int:
        return self.get("DynamicValueRelocTableOffset")

    @property
    def dynamic_value_reloc_table_section(self) -> int:
        return self.get("DynamicValueRelocTableSection")

    def field_rva(self, name: str) -> int | None:
        """RVA of a field of the structure itself (for pointer slots the loader rewrites)."""
        struct = (c_pe.IMAGE_LOAD_CONFIG_DIRECTORY64 if self.is64
                  else c_pe.IMAGE_LOAD_CONFIG_DIRECTORY32)
        off = 0
        for f in struct.__fields__:
            if f.name == name:
                return self.rva + off if name in self.fields else None
            off += len(f.type)
        return None


def parse_load_config(reader: RvaReader, rva: int, is64: bool,
                      source: int | None = None) -> LoadConfig:
    """Parse the structure at `rva`, honouring its Size whatever the SDK that built it."""
    struct = c_pe.IMAGE_LOAD_CONFIG_DIRECTORY64 if is64 else c_pe.IMAGE_LOAD_CONFIG_DIRECTORY32
    size = reader.u32(rva, "load configuration Size", source)
    if size < 4:
        raise reader.error(f"load configuration Size {size:#x} is too small", reader.where(rva))
    # The loader reads min(Size, what it knows); a Size past the image is corrupt.
    known = len(struct)
    raw = reader.read(rva, min(size, known), "load configuration directory")
    parsed = struct(raw + bytes(known - len(raw)))
    fields: dict[str, int] = {}
    off = 0
    for f in struct.__fields__:
        width = len(f.type)
        if off + width > size:
            break
        fields[f.name] = getattr(parsed, f.name)
        off += width
    if size > known:
        # Newer SDK than ours, or corrupt: the structure must at least lie inside the image.
        try:
            reader.read(rva + known, size - known, "load configuration directory tail")
        except InputError:
            raise reader.error(f"load configuration Size {size:#x} reaches past the end of "
                               "the image", reader.where(rva)) from None
    return LoadConfig(rva=rva, size=size, is64=is64, fields=fields)


@dataclass(frozen=True)
class GuardFunction:
    rva: int
    flags: int  # the per-entry metadata byte(s), 0 when the table has none


def parse_guard_cf_functions(reader: RvaReader, lc: LoadConfig,
                             image_base: int) -> list[GuardFunction]:
    """GuardCFFunctionTable: RVAs of valid indirect-call targets, each followed by n flag bytes."""
    table_va = lc.get("GuardCFFunctionTable")
    count = lc.get("GuardCFFunctionCount")
    if not table_va or not count:
        return []
    if count > MAX_CFG_FUNCTIONS:
        raise reader.error(f"GuardCFFunctionCount {count:#x} is implausible",
                           reader.where(lc.field_rva("GuardCFFunctionCount") or lc.rva))
    stride = 4 + ((lc.guard_flags & IMAGE_GUARD_CF_FUNCTION_TABLE_SIZE_MASK)
                  >> IMAGE_GUARD_CF_FUNCTION_TABLE_SIZE_SHIFT)
    table_rva = table_va - image_base
    raw = reader.read(table_rva, count * stride, "GuardCFFunctionTable",
                      lc.field_rva("GuardCFFunctionTable"))
    out = []
    for i in range(count):
        entry = raw[i * stride : (i + 1) * stride]
        out.append(GuardFunction(int.from_bytes(entry[:4], "little"),
                                 int.from_bytes(entry[4:], "little")))
    return out
