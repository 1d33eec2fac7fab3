"""Hotpatch images in one address space: what the loader records, checked against the code.

The loader's own records come first (LDR HotPatchState / ActivePatchImageBase on the base,
LoadReasonPatchImage on the patch image, PEB.CrossProcessFlags bit 7); the patch image's
IMAGE_HOT_PATCH_BASE records name the base (TimeDateStamp + CheckSum) and its functions; then
each named function's entry bytes are decoded with the engine's redirect check. A loader that
claims a patch the code does not show, or code redirected where the loader claims none, is
flagged.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

from hpforensics.classify.owners import AddressMap
from hpforensics.reference.patches import (PatchImage, collect_patches, from_winsxs,
                                           patched_module_name)
from hpforensics.classify.redirect import check_redirect
from hpforensics.pe.structures import redirect_entry_form
from hpforensics.space import AddressSpace, MappedImage
from hpforensics.reference.disk import identity_of

log = logging.getLogger(__name__)

HOTPATCH_STATES = {0: "BaseImage", 1: "NotApplied", 2: "AppliedReverse", 3: "AppliedForward",
                   4: "FailedToPatch"}
APPLIED_FORWARD = 3

# statuses
APPLIED = "applied"
BASE_MISMATCH = "mapped but base mismatch"
ORPHANED = "orphaned"
CLAIMED_NOT_IN_CODE = "loader claims patch, code does not show it"
UNCLAIMED = "code redirected, loader claims none"
PARTIAL = "partially applied"
CLAIMED_NOT_MAPPED = "loader claims patch image that is not mapped"
RECORDS_UNAVAILABLE = "patch image records unavailable"
NAMED_NO_RECORDS = "named like a patch image, carries no hot patch records"


@dataclass
class HotpatchImageRecord:
    source: str
    pid: int | None
    process: str
    base_module: str
    base_path: str
    base_address: int | None
    base_timestamp: int | None
    base_checksum: int | None
    patch_path: str
    patch_address: int | None
    sequence: int | None
    functions_patched: int
    functions_total: int
    kb: str
    loader_state: str  # HotPatchState of the base as the loader records it
    patch_in_loader_list: bool | None
    peb_images_hotpatched: bool | None
    status: str
    flagged: bool
    note: str = ""
    recognised_by: str = ""  # the signals that name the image a patch image


@contextlib.contextmanager
def quiet_pe_parsing() -> Iterator[None]:
    """Every mapped header is parsed to find patch images; complaints about directories that
    do not matter here (a relocated CFG table pointer, a paged-out load config) stay quiet."""
    pe_log = logging.getLogger("hpforensics.pe")
    level = pe_log.level
    pe_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pe_log.setLevel(level)


def _state_name(value: int | None) -> str:
    if value is None:
        return "unavailable"
    return HOTPATCH_STATES.get(value, f"unknown({value})")


def _identity(space: AddressSpace, image: MappedImage) -> tuple[int | None, int | None]:
    """TimeDateStamp / CheckSum: the loader entry's, else the mapped header's."""
    ts, cs = image.timestamp, image.checksum
    if ts and cs is not None:
        return ts, cs

    header = space.read_exact(image.base, 0x1000)
    ident = identity_of(header) if header else None
    if ident is None:
        return ts, cs
    return ts or ident.timestamp, cs if cs is not None else ident.checksum


def _naming_note(patch: PatchImage | None, base: MappedImage | None) -> str:
    """Where the patch image's name or folder departs from how Windows names and loads them."""
    if patch is None:
        return ""
    notes = []
    named = patched_module_name(patch.image.name)
    if named and base is not None and named.lower() != base.name.lower():
        notes.append(f"named for {named} but patches {base.name}")
    if ":\\" in patch.image.path and not from_winsxs(patch.image.path):
        notes.append("not loaded from C:\\Windows\\WinSxS, where Windows keeps patch images")
    return "; ".join(notes)


def _count_redirects(space: AddressSpace, amap: AddressMap, base: MappedImage, ts: int, cs: int,
                     patch: PatchImage, patches: Sequence[PatchImage]) -> tuple[int, int, str]:
    record = patch.base_for(ts, cs)
    if record is None:
        return 0, 0, ""
    functions = record.functions
    data = space.read(base.base, base.size)
    # What the base held before patching, as far as the patch table records it (the first two
    # bytes of each function); everything else is taken as is, since no file is needed here.
    before = bytearray(data.data)
    for entry in functions:
        original = entry.expected_first_bytes
        if original is not None and 0 <= entry.base_rva < len(before) - 2:
            before[entry.base_rva : entry.base_rva + 2] = original
    ok, first_bad = 0, ""
    for entry in functions:
        f_off = entry.base_rva
        if not 8 <= f_off < base.size - 2:
            continue
        page = (f_off - 6) // 0x1000
        if not all(data.present[page : (f_off + 2) // 0x1000 + 1]):
            first_bad = first_bad or f"function at RVA {f_off:#x} is paged out"
            continue
        if redirect_entry_form(data.data, f_off) is None:
            first_bad = first_bad or f"function at RVA {f_off:#x} is not redirected"
            continue
        r = check_redirect(space, amap, base.base, ts, cs, data.data, bytes(before), f_off,
                           patches)
        if r.hotpatch and r.patch is patch:
            ok += 1
        elif not first_bad:
            first_bad = f"RVA {f_off:#x}: {r.reason or 'not redirected'}"
    return ok, len(functions), first_bad


def hotpatch_images(
    space: AddressSpace,
    *,
    peb_flag: bool | None = None,
    kb_lookup: Optional[Callable[[str], Optional[str]]] = None,
) -> list[HotpatchImageRecord]:
    """One record per (patch image, base) pair and per loader claim nobody backs."""
    images = list(space.images())
    with quiet_pe_parsing():
        patches = collect_patches(space, images, lambda m: None, kb_lookup)
    amap = AddressMap(images)
    by_base = {m.base: m for m in images}
    patch_bases = {p.image.base for p in patches}
    rows: list[HotpatchImageRecord] = []
    covered: set[tuple[int, int]] = set()

    def row(base: MappedImage | None, patch: PatchImage | None, status: str, flagged: bool,
            done: int = 0, total: int = 0, note: str = "", ts=None, cs=None) -> None:
        rows.append(HotpatchImageRecord(
            source=space.source, pid=space.pid, process=space.process,
            base_module=base.name if base else "", base_path=base.path if base else "",
            base_address=base.base if base else None, base_timestamp=ts, base_checksum=cs,
            patch_path=patch.image.path if patch else "",
            patch_address=patch.image.base if patch else None,
            sequence=patch.sequence if patch else None, functions_patched=done,
            functions_total=total, kb=patch.kb if patch else "",
            loader_state=("n/a" if space.pid is None else _state_name(base.hotpatch_state))
            if base else "",
            patch_in_loader_list=patch.image.in_loader_list if patch else None,
            peb_images_hotpatched=peb_flag, status=status, flagged=flagged,
            note="; ".join(n for n in (note, _naming_note(patch, base)) if n),
            recognised_by=patch.recognised_by if patch else ""))

    for patch in patches:
        matched = False
        for base in images:
            if base.base in patch_bases:
                continue
            ts, cs = _identity(space, base)
            if ts is None or cs is None or patch.base_for(ts, cs) is None:
                continue
            matched = True
            covered.add((base.base, patch.image.base))
            done, total, why = _count_redirects(space, amap, base, ts, cs, patch, patches)
            claims = (base.hotpatch_state == APPLIED_FORWARD
                      and base.active_patch_base == patch.image.base)
            if base.hotpatch_state is None:  # kernel modules: no loader fields, code decides
                claims = done > 0
            if done and done == total and claims:
                status, flagged = APPLIED, False
            elif done and claims:
                status, flagged = PARTIAL, True
            elif claims:
                status, flagged = CLAIMED_NOT_IN_CODE, True
            elif done:
                status, flagged = UNCLAIMED, True
            else:
                status, flagged = ORPHANED, False
            if status == APPLIED and peb_flag is False:
                flagged, why = True, "PEB ProcessImagesHotPatched is clear"
            row(base, patch, status, flagged, done, total, why, ts, cs)
        if not matched:
            names = ", ".join(f"TimeDateStamp {b.original_timestamp:#x} CheckSum "
                              f"{b.original_checksum:#x}" for b in patch.info.bases) or "no base"
            row(None, patch, BASE_MISMATCH, True, note=f"patch names {names}; no such image mapped")
    for im in images:  # loaded as a patch image, but its hot patch records cannot be read
        if im.is_patch_image and im.base not in patch_bases:
            rows.append(HotpatchImageRecord(
                source=space.source, pid=space.pid, process=space.process, base_module="",
                base_path="", base_address=None, base_timestamp=None, base_checksum=None,
                patch_path=im.path, patch_address=im.base, sequence=None, functions_patched=0,
                functions_total=0, kb="", loader_state="", patch_in_loader_list=im.in_loader_list,
                peb_images_hotpatched=peb_flag, status=RECORDS_UNAVAILABLE, flagged=False,
                note="LoadReasonPatchImage, but the mapped header / load config is not readable"))
    for im in images:  # a Windows patch image's name on an image with no hot patch records
        named = patched_module_name(im.name)
        if named and im.base not in patch_bases and not im.is_patch_image:
            rows.append(HotpatchImageRecord(
                source=space.source, pid=space.pid, process=space.process, base_module=named,
                base_path="", base_address=None, base_timestamp=None, base_checksum=None,
                patch_path=im.path, patch_address=im.base, sequence=None, functions_patched=0,
                functions_total=0, kb="", loader_state="", patch_in_loader_list=im.in_loader_list,
                peb_images_hotpatched=peb_flag, status=NAMED_NO_RECORDS, flagged=True,
                note=f"named as the patch image of {named}, but its mapped header holds no "
                     "hot patch records", recognised_by="name"))
    for base in images:
        if base.hotpatch_state == APPLIED_FORWARD and base.active_patch_base:
            if (base.base, base.active_patch_base) in covered:
                continue
            target = by_base.get(base.active_patch_base)
            ts, cs = _identity(space, base)
            if target is None or target.base not in patch_bases:
                row(base, None, CLAIMED_NOT_MAPPED, True, ts=ts, cs=cs,
                    note=f"ActivePatchImageBase {base.active_patch_base:#x} holds no patch image")
            else:
                p = next(p for p in patches if p.image.base == target.base)
                row(base, p, BASE_MISMATCH, True, ts=ts, cs=cs,
                    note=f"{p.image.name} names no base with this TimeDateStamp/CheckSum")
    rows.sort(key=lambda r: (r.base_address or 0, r.patch_address or 0))
    return rows
