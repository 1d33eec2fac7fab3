"""Decoding changed code: the hotpatch redirect chain, and where any other branch leads.

A genuine hotpatch redirect of function F (hotpatch-internals.md): `E9 rel32` at F-5 + `EB F9`
at F (or the older `FF 25 disp32` at F-6 + `EB F8`), leading to an HPAT stub
`FF 25 FA 0F 00 00 CC CC` of a patch image mapped in the same space, whose pointer 0x1000
further holds the patch function, which the patch image's table names for F. Every link is
checked byte for byte; the first broken link is the reason a redirect is `unexplained`.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Sequence

from hpforensics.classify.owners import AddressMap
from hpforensics.disasm import MASK64, pointer
from hpforensics.reference.patches import PatchImage, patches_for
from hpforensics.pe.structures import (
    HPAT_SLOT_DISTANCE,
    HPAT_STUB_X64,
    REDIRECT_FAR,
    REDIRECT_FORMS,
    REDIRECT_NEAR,
    REDIRECT_WINDOW,
)
from hpforensics.space import AddressSpace

log = logging.getLogger(__name__)

WINDOW_BEFORE, WINDOW_AFTER = -REDIRECT_WINDOW[0], REDIRECT_WINDOW[1]  # [F-6, F+2)
ENTRIES = tuple(f.entry for f in REDIRECT_FORMS)


@dataclass
class Redirect:
    function: int  # address of F
    start: int  # window written by the kernel
    end: int
    hotpatch: bool
    reason: str
    target: int | None = None  # the stub (E9 form) or pointer slot (FF 25 form)
    function_target: int | None = None  # where the chain finally leads
    patch: PatchImage | None = None
    sequence: int | None = None
    unavailable: bool = False  # the chain leads into memory the source could not read
    hpat_where: str = ""  # where the HPAT stub lies, as seen


def find_redirects(actual: bytes, start: int, end: int, lo: int) -> list[int]:
    """Offsets F (relative to the buffer) with EB F9 / EB F8 whose kernel window touches the
    changed range [start, end) (all offsets relative to `actual`)."""
    out = []
    p = max(start - WINDOW_AFTER + 1, lo)
    stop = min(end + WINDOW_BEFORE, len(actual) - 1)
    while p < stop:
        p = actual.find(b"\xeb", p, stop)
        if p < 0:
            break
        if actual[p : p + 2] in ENTRIES and p - WINDOW_BEFORE < end and p + 2 > start:
            out.append(p)
        p += 1
    return out


def check_redirect(
    space: AddressSpace,
    amap: AddressMap,
    base: int,
    timestamp: int,
    checksum: int,
    actual: bytes,
    expected: bytes,
    f_off: int,
    patches: Sequence[PatchImage],
) -> Redirect:
    """Check the whole chain for the redirect at `base + f_off`; never raises."""
    F = base + f_off
    near = actual[f_off : f_off + 2] == REDIRECT_NEAR.entry
    # The kernel writes [F-6, F+2); in the E9 form F-6 keeps its byte, so the finding starts
    # at the E9.
    form = REDIRECT_NEAR if near else REDIRECT_FAR
    win = Redirect(F, F + form.jump_at, F + WINDOW_AFTER, False, "")
    patch_bases = {p.image.base for p in patches}

    def bad(reason: str) -> Redirect:
        win.reason = reason
        return win

    def unreadable(address: int, what: str) -> Redirect:
        # Paged-out HPAT pages are ordinary in memory images; only when a patch image for this
        # module is mapped can the redirect be the hotpatch engine's, so only then is it left
        # open ("unavailable") rather than unexplained.
        if patches_for(patches, timestamp, checksum):
            win.unavailable = True
            return bad(f"{what} at {address:#x} is not present in the source; a patch image for "
                       "this module is mapped, so the redirect cannot be verified either way")
        return bad(f"{what} at {address:#x} is not readable and no patch image for this module "
                   "is mapped")

    if f_off < WINDOW_BEFORE:
        return bad("short jump at the very start of the image")
    if near:
        if actual[f_off - 5 : f_off - 4] != REDIRECT_NEAR.jump_opcode:
            return bad("EB F9 at the function entry without an E9 jmp at F-5")
        if actual[f_off - 6] != expected[f_off - 6]:
            win.start = F - WINDOW_BEFORE
            return bad("byte before the E9 jmp changed too")
        target = (F + struct.unpack_from("<i", actual, f_off - 4)[0]) & MASK64
        win.target = target
        stub = space.read_exact(target, 8)
        if stub is None:
            return unreadable(target, "E9 target")
        if stub != HPAT_STUB_X64 or target & 7:
            return bad(f"E9 at F-5 lands at {target:#x} ({amap.describe(target)}), which is not an "
                       "HPAT stub")
        holder = amap.owner(target)
        if holder is not None and holder.base not in patch_bases:
            return bad(f"HPAT-like stub at {target:#x} lies inside {holder.name}, not in an HPAT")
        # On 24H2 the HPAT is in the base image's own extension pages; a stub in another
        # image's extension is not this image's HPAT.
        ext = amap.extension_owner(target)
        if ext is not None and ext.base != base:
            return bad(f"HPAT stub at {target:#x} lies in the extension pages of {ext.name}, "
                       "not of this image")
        win.hpat_where = ("the image's extension pages" if ext is not None
                          else "private memory after the image")
        slot = (target + HPAT_SLOT_DISTANCE) & MASK64
    else:
        if actual[f_off - 6 : f_off - 4] != REDIRECT_FAR.jump_opcode:
            return bad("EB F8 at the function entry without an FF 25 jmp at F-6")
        slot = (F + struct.unpack_from("<i", actual, f_off - 4)[0]) & MASK64
        win.target = slot
    fn = pointer(space.read_exact, slot)
    win.function_target = fn
    if fn is None:
        return unreadable(slot, "HPAT pointer slot")
    patch = next((p for p in patches if p.image.contains(fn)), None)
    if patch is None:
        return bad(f"HPAT pointer at {slot:#x} leads to {amap.describe(fn)}, not into a mapped "
                   "hotpatch image")
    win.patch, win.sequence = patch, patch.sequence
    record = patch.base_for(timestamp, checksum)
    if record is None:
        return bad(f"patch image {patch.image.name} leads the redirect but its "
                   f"IMAGE_HOT_PATCH_BASE does not name this image (TimeDateStamp "
                   f"{timestamp:#x}, CheckSum {checksum:#x})")
    entry = patch.function_entry(record, f_off)
    if entry is None:
        return bad(f"patch table of {patch.image.name} does not name the function at RVA "
                   f"{f_off:#x}")
    if fn - patch.image.base != entry.patch_rva:
        return bad(f"HPAT pointer leads to patch RVA {fn - patch.image.base:#x}, the patch table "
                   f"says {entry.patch_rva:#x}")
    original = entry.expected_first_bytes
    if original is not None and expected[f_off : f_off + 2] != original:
        return bad("patch table's copy of the function's first bytes does not match the file")
    win.hotpatch = True
    win.sequence = record.sequence_number or patch.sequence
    rivals = [p for p, b in patches_for(patches, timestamp, checksum)
              if (b.sequence_number or p.sequence) > win.sequence
              and p.function_entry(b, f_off) is not None]
    win.reason = (f"hotpatch redirect into {patch.image.name} (sequence {win.sequence})"
                  + (f" through an HPAT stub in {win.hpat_where}" if win.hpat_where else "")
                  + (f"; a higher sequence patch {rivals[0].image.name} also names it"
                     if rivals else ""))
    return win
