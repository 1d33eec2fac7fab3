"""What the hotpatch engine wrote into a mapped image, and what was there before it, from the
patch images mapped beside it (their own headers: patch tables, first bytes of each patched
function). A digest reference knows only page hashes; undoing these writes and hashing again
tells a page whose only change is the hotpatch engine's from one that was changed otherwise.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from hpforensics.pe.structures import redirect_entry_form
from hpforensics.kb.known_pages import page_digests
from hpforensics.reference.patches import patches_for

PAGE = 0x1000
PAD_BYTES = (0xCC, 0x90)  # hot-patchable padding: int3 or nop, tried after the byte left at F-6
VARIANTS = 1 + len(PAD_BYTES)
MACHINE_ARM64 = 0xAA64


@dataclass
class Edit:
    """Bytes the hotpatch engine wrote at `rva`, with what they were before, one variant per
    padding guess (patch-table slots have the same value in every variant)."""

    rva: int
    variants: list[bytes]

    @property
    def end(self) -> int:
        return self.rva + len(self.variants[0])


def _slots(entries, inverse: bool, machine: int, size: int) -> list[Edit]:
    out = []
    for ent in entries:
        wr = ent.write_range(machine) if ent.inverse == inverse else None
        if wr and 0 <= wr[0] and wr[0] + wr[1] <= size:
            out.append(Edit(wr[0], [bytes(wr[1])] * VARIANTS))
    return out


def slot_edits(patches: Sequence, base: int, headers, size: int) -> list[Edit]:
    """Patch-table slots the kernel filled: INVERSE ones in a patch image (the module at
    `base` is one), forward ones in a base image the patches name. A compiler leaves a zero
    placeholder there (the `__ref_` pointers, rel32 operands)."""

    out: list[Edit] = []
    own = next((p for p in patches if p.image.base == base), None)
    if own is not None:
        for rec in own.info.bases:
            out += _slots(own.data_entries(rec), True, headers.machine, size)
    for p, rec in patches_for(patches, headers.timestamp, headers.checksum):
        out += _slots(p.data_entries(rec), False, headers.machine, size)
    return out


def redirect_edits(patches: Sequence, headers, work: bytearray) -> list[Edit]:
    """Redirects at functions the mapped patch tables name, highest sequence first."""

    out: list[Edit] = []
    seen: set[int] = set()
    for _, rec in patches_for(patches, headers.timestamp, headers.checksum):
        for e in rec.functions:
            if e.base_rva in seen or not e.extra:
                continue
            edit = _redirect(work, e.base_rva, e.extra[0], headers.machine)
            if edit is not None:
                seen.add(e.base_rva)
                out.append(edit)
    return out


def _redirect(work: bytearray, f: int, first: int, machine: int) -> Edit | None:
    original = struct.pack("<I", first)  # the function's first DWORD, as the table keeps it
    if machine == MACHINE_ARM64:  # the branch replaces the first instruction word
        return Edit(f, [original] * VARIANTS) if f + 4 <= len(work) else None
    form = redirect_entry_form(work, f)
    if form is None:
        return None
    n = -form.jump_at  # the jump written before F
    if f < n + 1:
        return None
    left = work[f - n - 1]  # padding the kernel did not touch
    return Edit(f - n, [bytes([pad]) * n + original[:2] for pad in (left, *PAD_BYTES)])


def restore_page(work: bytearray, r: int, edits: Sequence[Edit], mask: bytes, algo: str,
                 want: bytes) -> bool:
    """Undo the edits touching page `r`, one variant at a time; keep (in `work`) the first
    whose normalised digest is `want`. False when none is."""
    mine = [e for e in edits if e.rva < r + PAGE and e.end > r]
    if not mine:
        return False
    page_mask = mask[r // 8 : (r + PAGE) // 8]
    for k in range(VARIANTS):
        page = bytearray(work[r : r + PAGE])
        for e in mine:
            v = e.variants[k]
            lo, hi = max(e.rva, r), min(e.end, r + PAGE)
            page[lo - r : hi - r] = v[lo - e.rva : hi - e.rva]
        if page_digests(bytes(page), [0], page_mask, algo).get(0) == want:
            work[r : r + PAGE] = page
            return True
    return False
