"""Load-configuration slots and dynamic value relocation sites the loader rewrites.

The structures are parsed by `hpforensics.pe` (load config of any size, dynamic relocation
tables v1/v2 with function overrides, ARM64X, retpoline sites); this module turns them into
masked ranges with kinds.
"""
from __future__ import annotations

import logging
from typing import Any

from hpforensics.pe.dynreloc import parse_dynamic_relocations, table_rva
from hpforensics.pe.hotpatch import HotPatchInfo, parse_hotpatch
from hpforensics.pe.loadconfig import LoadConfig, parse_load_config
from hpforensics.pe.reader import RvaReader, Section as PESection
from hpforensics.reference.headers import Headers
from hpforensics.reference.kinds import DVRT_KIND, MaskKind
from hpforensics.reference.maskset import MaskSet

log = logging.getLogger(__name__)

#: Load-config fields holding the VA of a pointer slot the OS fills in at load time.
CFG_FIELDS = (
    "GuardCFCheckFunctionPointer",
    "GuardCFDispatchFunctionPointer",
    "GuardXFGCheckFunctionPointer",
    "GuardXFGDispatchFunctionPointer",
    "GuardXFGTableDispatchFunctionPointer",
    "GuardRFFailureRoutineFunctionPointer",
    "GuardRFVerifyStackPointerFunctionPointer",
    "GuardMemcpyFunctionPointer",
)
OTHER_SLOT_FIELDS = ("CastGuardOsDeterminedFailureMode",)


def reader_for(data: Any, path: str, hdr: Headers) -> RvaReader:
    sections = [PESection(s.name, s.va, s.vsize, s.raw_offset, s.raw_size, s.characteristics)
                for s in hdr.sections]
    return RvaReader(data, path, sections, hdr.size_of_headers, mapped=False)


def _rva(hdr: Headers, va: int) -> int | None:
    if not va:
        return None
    rva = va - hdr.image_base
    return rva if 0 <= rva < hdr.size_of_image else None


def load_config_masks(reader: RvaReader, hdr: Headers,
                      masks: MaskSet) -> tuple[LoadConfig | None, HotPatchInfo | None]:
    """Add load-config slots and DVRT sites to `masks`; returns the load config and, for a
    patch image, its hot patch records. Malformed structures raise InputError."""
    rva, _ = hdr.directory(10)
    if not rva:
        return None, None
    lc = parse_load_config(reader, rva, hdr.is64)
    ps = hdr.pointer_size
    slots = [_rva(hdr, lc.get(f)) for f in CFG_FIELDS]
    masks.add(MaskKind.CFG_POINTER, [r for r in slots if r is not None], ps)
    other = [_rva(hdr, lc.get(f)) for f in OTHER_SLOT_FIELDS]
    masks.add(MaskKind.LOADCONFIG_SLOT, [r for r in other if r is not None], ps)
    cookie = _rva(hdr, lc.get("SecurityCookie"))
    if cookie is not None:
        masks.add(MaskKind.SECURITY_COOKIE, [cookie], ps)
    sections = reader.sections
    trva = table_rva(lc, sections, hdr.image_base)
    if trva == -1:
        raise reader.error("DynamicValueRelocTableSection names no section",
                           reader.where(lc.field_rva("DynamicValueRelocTableSection") or rva))
    if trva:
        table = parse_dynamic_relocations(reader, trva, hdr.is64)
        by_kind: dict[MaskKind, tuple[list[int], list[int]]] = {}
        for d in table.relocations:
            starts, widths = by_kind.setdefault(DVRT_KIND.get(d.symbol, MaskKind.DYNAMIC_OTHER),
                                                ([], []))
            starts.append(d.rva)
            widths.append(d.size)
        for kind, (starts, widths) in by_kind.items():
            masks.add(kind, starts, widths)
        if table.function_overrides:
            # The BDD decision data the loader reads to pick an override lives in this table.
            masks.add(MaskKind.FUNCTION_OVERRIDE_BDD, [trva], table.size + 8)
    hotpatch = (parse_hotpatch(reader, lc.hot_patch_table_offset)
                if lc.hot_patch_table_offset else None)
    return lc, hotpatch
