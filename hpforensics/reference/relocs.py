"""Base relocations, parsed and applied with numpy: one vectorised pass per relocation type.

A 20 MiB image carries hundreds of thousands of relocations; pefile builds one Python object
per entry, which is what makes naive verification slow. Here the blocks are walked in Python
(one per page) and the entries are handled as arrays.
"""
from __future__ import annotations

import logging
import struct

import numpy as np

from hpforensics.errors import InputError
from hpforensics.reference.headers import Headers

log = logging.getLogger(__name__)

REL_ABSOLUTE = 0
REL_HIGH = 1
REL_LOW = 2
REL_HIGHLOW = 3
REL_HIGHADJ = 4
REL_DIR64 = 10

#: Width of the field each relocation type rewrites.
WIDTH = {REL_HIGH: 2, REL_LOW: 2, REL_HIGHLOW: 4, REL_HIGHADJ: 2, REL_DIR64: 8}


def parse_relocations(img: bytearray, hdr: Headers, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(rvas, types) of every base relocation entry except padding, from the laid-out image."""
    rva, size = hdr.directory(5)
    if not rva or not size:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    if rva + 8 > len(img):
        # DataDirectory[5] lives in the optional header: 112 (PE32+) / 96 (PE32) bytes in, 8 each
        field = hdr.optional_offset + (112 if hdr.is64 else 96) + 5 * 8
        raise InputError(path, f"base relocation directory at RVA {rva:#x} lies outside the image "
                               f"({len(img):#x} bytes)", field)
    end = min(rva + size, len(img))
    pos = rva
    pages: list[int] = []
    chunks: list[np.ndarray] = []
    while pos + 8 <= end:
        page, block = struct.unpack_from("<II", img, pos)
        if block == 0 and page == 0:
            break
        if block < 8 or pos + block > end or block & 1:
            raise InputError(
                path, f"relocation block at RVA {pos:#x} has bad SizeOfBlock {block:#x}",
                hdr.rva_to_offset(pos),
            )
        if page >= hdr.size_of_image:
            raise InputError(
                path, f"relocation block at RVA {pos:#x} names page {page:#x} beyond the image",
                hdr.rva_to_offset(pos),
            )
        chunks.append(np.frombuffer(img, "<u2", count=(block - 8) // 2, offset=pos + 8).copy())
        pages.append(page)
        pos += block
    if not chunks:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    counts = np.fromiter((len(c) for c in chunks), np.int64, len(chunks))
    entries = np.concatenate(chunks)
    rvas = np.repeat(np.asarray(pages, np.int64), counts) + (entries & 0xFFF).astype(np.int64)
    types = (entries >> 12).astype(np.uint8)
    if np.any(types == REL_HIGHADJ):
        # HIGHADJ consumes the following entry as its parameter: drop those from the list.
        param = np.zeros(len(types), bool)
        param[1:] = types[:-1] == REL_HIGHADJ
        rvas, types = rvas[~param], types[~param]
    keep = types != REL_ABSOLUTE
    return rvas[keep], types[keep]


def _gather(buf: np.ndarray, rvas: np.ndarray, width: int,
            dtype: str) -> tuple[np.ndarray, np.ndarray]:
    idx = rvas[:, None] + np.arange(width)
    return idx, buf[idx].copy().view(dtype)[:, 0]


def apply_relocations(
    img: bytearray, rvas: np.ndarray, types: np.ndarray, delta: int
) -> np.ndarray:
    """Apply relocations for `delta` (new base - preferred base); returns a bool array marking
    the entries whose type we could not apply (left for the caller to mask)."""
    buf = np.frombuffer(img, np.uint8)
    n = len(img)
    unapplied = np.zeros(len(rvas), bool)
    for rtype in np.unique(types):
        sel = types == rtype
        width = WIDTH.get(int(rtype))
        if width is None or rtype == REL_HIGHADJ:
            unapplied |= sel
            continue
        inside = sel & (rvas + width <= n)
        unapplied |= sel & ~inside
        r = rvas[inside]
        if not len(r) or not delta:
            continue
        if rtype == REL_DIR64:
            idx, vals = _gather(buf, r, 8, "<u8")
            vals = vals + np.uint64(delta & 0xFFFF_FFFF_FFFF_FFFF)
            buf[idx] = vals.astype("<u8").view(np.uint8).reshape(-1, 8)
        elif rtype == REL_HIGHLOW:
            idx, vals = _gather(buf, r, 4, "<u4")
            vals = vals + np.uint32(delta & 0xFFFF_FFFF)
            buf[idx] = vals.astype("<u4").view(np.uint8).reshape(-1, 4)
        else:
            idx, vals = _gather(buf, r, 2, "<u2")
            d32 = delta & 0xFFFF_FFFF
            wide = vals.astype(np.uint64)
            if rtype == REL_HIGH:
                wide = (((wide << np.uint64(16)) + np.uint64(d32)) >> np.uint64(16))
            else:
                wide = wide + np.uint64(d32 & 0xFFFF)
            vals = (wide & np.uint64(0xFFFF)).astype("<u2")
            buf[idx] = vals.view(np.uint8).reshape(-1, 2)
    return unapplied
