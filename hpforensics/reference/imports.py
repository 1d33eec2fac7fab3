"""Import and delay-import slots: where the loader writes resolved addresses.

Walked on the laid-out image (RVA == offset). A damaged import table is reported as a warning
and skipped: the rest of the image can still be verified.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

import numpy as np

from hpforensics.reference.headers import Headers

log = logging.getLogger(__name__)

MAX_DESCRIPTORS = 4096
_SCAN = 512  # entries scanned per step when looking for a thunk array's terminator


@dataclass
class ImportSlots:
    """One array per field so classification can gather slot values without Python loops."""

    rvas: np.ndarray  # int64 RVA of each slot
    dll: np.ndarray  # int32 index into `dlls`
    dlls: list[str]
    handle_rvas: np.ndarray  # delay-load module handle slots
    names_at: np.ndarray  # int64 RVA of the name-table entry describing each slot

    @classmethod
    def empty(cls) -> "ImportSlots":
        z = np.zeros(0, np.int64)
        return cls(z, np.zeros(0, np.int32), [], z, z)

    def describe(self, layout: bytes, rva: int, width: int) -> str:
        """"kernel32.dll!Sleep" (or "#ordinal") for the slot at `rva`; "" if not a slot."""
        hit = np.flatnonzero(self.rvas == rva)
        if not len(hit):
            return ""
        i = int(hit[0])
        dll = self.dlls[int(self.dll[i])] if int(self.dll[i]) < len(self.dlls) else "?"
        at = int(self.names_at[i])
        thunk = int.from_bytes(layout[at : at + width], "little")
        if thunk >> (8 * width - 1):
            return f"{dll}!#{thunk & 0xFFFF}"
        name = (_cstring(bytearray(layout[thunk + 2 : thunk + 258]), 0)
                if 0 < thunk < len(layout) else "")
        return f"{dll}!{name}" if name else dll


def _cstring(img: bytearray, rva: int, limit: int = 256) -> str:
    if not 0 <= rva < len(img):
        return ""
    end = img.find(b"\0", rva, rva + limit)
    return bytes(img[rva : end if end >= 0 else rva + limit]).decode("latin-1")


def _thunk_count(img: bytearray, rva: int, width: int) -> int:
    """Entries before the zero terminator of a thunk array (bounded by the image)."""
    dtype = "<u8" if width == 8 else "<u4"
    count = 0
    pos = rva
    while pos + width <= len(img):
        n = min(_SCAN, (len(img) - pos) // width)
        arr = np.frombuffer(img, dtype, count=n, offset=pos)
        zeros = np.flatnonzero(arr == 0)
        if len(zeros):
            return count + int(zeros[0])
        count += n
        pos += n * width
    return count


def import_slots(img: bytearray, hdr: Headers,
                 warnings: list[str]) -> tuple[ImportSlots, ImportSlots]:
    """(IAT slots, delay-load IAT slots)."""
    width = hdr.pointer_size
    return _imports(img, hdr, width, warnings), _delay_imports(img, hdr, width, warnings)


def _collect(parts: list[tuple[int, int, int, int]], dlls: list[str], width: int,
             handles: list[int] | None = None) -> ImportSlots:
    if not parts:
        out = ImportSlots.empty()
        out.dlls = dlls
        return out
    rvas = np.concatenate([np.arange(n, dtype=np.int64) * width + iat for iat, n, _, _ in parts])
    names = np.concatenate([np.arange(n, dtype=np.int64) * width + src for _, n, _, src in parts])
    dll = np.concatenate([np.full(n, i, np.int32) for _, n, i, _ in parts])
    h = np.asarray(sorted(handles or []), np.int64)
    return ImportSlots(rvas, dll, dlls, h, names)


def _imports(img: bytearray, hdr: Headers, width: int, warnings: list[str]) -> ImportSlots:
    rva, size = hdr.directory(1)
    parts: list[tuple[int, int, int, int]] = []
    dlls: list[str] = []
    if not rva:
        return ImportSlots.empty()
    for i in range(MAX_DESCRIPTORS):
        pos = rva + 20 * i
        if pos + 20 > len(img):
            warnings.append(f"import directory at RVA {rva:#x} runs past the image")
            break
        oft, _, _, name, ft = struct.unpack_from("<IIIII", img, pos)
        if not (oft or name or ft):
            break
        if not ft or ft >= len(img):
            warnings.append(f"import descriptor {i} has IAT RVA {ft:#x} outside the image")
            continue
        source = oft if 0 < oft < len(img) else ft
        n = _thunk_count(img, source, width)
        n = min(n, (len(img) - ft) // width)
        dlls.append(_cstring(img, name).lower())
        parts.append((ft, n, len(dlls) - 1, source))
    return _collect(parts, dlls, width)


def _delay_imports(img: bytearray, hdr: Headers, width: int, warnings: list[str]) -> ImportSlots:
    rva, size = hdr.directory(13)
    if not rva:
        return ImportSlots.empty()
    parts: list[tuple[int, int, int, int]] = []
    dlls: list[str] = []
    handles: list[int] = []
    for i in range(MAX_DESCRIPTORS):
        pos = rva + 32 * i
        if pos + 32 > len(img):
            warnings.append(f"delay-import directory at RVA {rva:#x} runs past the image")
            break
        attrs, name, handle, iat, int_, _, _, _ = struct.unpack_from("<8I", img, pos)
        if not (name or iat or int_):
            break
        if not attrs & 1:  # version 1 descriptors hold VAs (32-bit era), convert to RVAs
            name, handle, iat, int_ = (
                (v - hdr.image_base) & 0xFFFFFFFF if v else 0 for v in (name, handle, iat, int_)
            )
        if not 0 < iat < len(img):
            warnings.append(f"delay-import descriptor {i} has IAT RVA {iat:#x} outside the image")
            continue
        source = int_ if 0 < int_ < len(img) else iat
        n = min(_thunk_count(img, source, width), (len(img) - iat) // width)
        dlls.append(_cstring(img, name).lower())
        parts.append((iat, n, len(dlls) - 1, source))
        if 0 < handle < len(img) - width:
            handles.append(handle)
    return _collect(parts, dlls, width, handles)
