"""Checks of the masked, runtime-valued loader slots (IAT, CFG pointers, cookie, DVRT sites).

These bytes are hidden from the byte comparison because only the running system knows their
value; here they are compared on their own, in numpy, and pointer slots must lead into a
mapped image (an IAT entry leading anywhere else is an IAT hook).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpforensics.classify.owners import AddressMap
from hpforensics.reference.expected import ExpectedImage
from hpforensics.reference.kinds import FIXED_VALUE, POINTER_VALUE, MaskKind


@dataclass
class SlotResult:
    kind: MaskKind
    rva: int
    size: int
    ok: bool  # loader-written (True) or a hook (False)
    value: int | None = None
    owner: str = ""
    dll: str = ""


def _gather(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    return buf[starts[:, None] + np.arange(width)]


def check_slots(
    expected: ExpectedImage,
    actual: bytes,
    present_pages: np.ndarray,
    amap: AddressMap,
    self_index: int,
    others_known: bool,
) -> list[SlotResult]:
    """Every runtime-valued slot whose bytes differ from the file, with its verdict."""
    E = np.frombuffer(expected.data, np.uint8)
    A = np.frombuffer(actual, np.uint8)
    ps = expected.headers.pointer_size
    out: list[SlotResult] = []

    def dll_of(rva: int) -> str:
        t = expected.template
        return t.iat.describe(t.layout, rva, ps) or t.delay_iat.describe(t.layout, rva, ps)
    for g in expected.masks.groups:
        if g.kind in FIXED_VALUE:
            continue
        for w in np.unique(g.widths).tolist():
            s = g.starts[g.widths == w]
            last = np.minimum((s + w - 1) >> 12, len(present_pages) - 1)  # page of the last byte
            s = s[present_pages[s >> 12] & present_pages[last]]
            if not len(s):
                continue
            differs = np.any(_gather(E, s, w) != _gather(A, s, w), axis=1)
            s = s[differs]
            if not len(s):
                continue
            if g.kind in POINTER_VALUE and w == ps:
                raw = _gather(A, s, w).copy()
                values = raw.view("<u8" if ps == 8 else "<u4")[:, 0].astype(np.uint64)
                # On 24H2 the loader points CFG slots at the SCP CFG functions in ntdll's
                # extension page (ntdll base + SizeOfImage + 0x40 ...; docs/hotpatch-format.md).
                owners = amap.owner_index(values, extensions=g.kind == MaskKind.CFG_POINTER)
                if not others_known:
                    ok = np.ones(len(s), bool)
                elif g.kind == MaskKind.DELAY_IAT:
                    ok = owners >= 0
                else:
                    ok = (owners >= 0) & (owners != self_index)
                for rva, v, good, o in zip(s.tolist(), values.tolist(), ok.tolist(),
                                           owners.tolist()):
                    owner = amap.describe(v) if o < 0 or not amap.images[o].contains(v) \
                        else amap.images[o].name
                    out.append(SlotResult(g.kind, rva, w, good, v, owner,
                                          "" if good and others_known else dll_of(rva)))
            else:
                out.extend(SlotResult(g.kind, rva, w, True) for rva in s.tolist())
    return out
