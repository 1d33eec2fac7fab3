"""Where functions are: .pdata extents (x64/ARM64) and export names, to say which function a
change falls in."""
from __future__ import annotations

import struct

import numpy as np

from hpforensics.reference.headers import Headers


def pdata_functions(img: bytearray, hdr: Headers) -> np.ndarray:
    """Function extents from the exception directory (x64/ARM64 RUNTIME_FUNCTION)."""
    rva, size = hdr.directory(3)
    if not rva or hdr.machine not in (0x8664, 0xAA64) or rva + size > len(img):
        return np.zeros((0, 2), np.int64)
    if hdr.machine == 0xAA64:  # ARM64 entries: begin + packed length, 8 bytes
        e = np.frombuffer(img, "<u4", count=size // 8 * 2,
                          offset=rva).reshape(-1, 2).astype(np.int64)
        begin = e[:, 0]
        packed = (e[:, 1] & 3) != 0
        end = np.where(packed, begin + ((e[:, 1] >> 2) & 0x7FF) * 4, begin + 4)
    else:
        e = np.frombuffer(img, "<u4", count=size // 12 * 3,
                          offset=rva).reshape(-1, 3).astype(np.int64)
        begin, end = e[:, 0], e[:, 1]
    keep = (begin > 0) & (end > begin)
    out = np.stack([begin[keep], end[keep]], axis=1)
    return out[np.argsort(out[:, 0], kind="stable")]


def exports(img: bytearray, hdr: Headers) -> dict[int, str]:
    """Exported function RVA -> name (first name wins; ordinal-only exports as "#n")."""
    rva, size = hdr.directory(0)
    if not rva or rva + 40 > len(img):
        return {}
    base, n_funcs, n_names, funcs, names, ords = struct.unpack_from("<6I", img, rva + 16)
    n_funcs, n_names = min(n_funcs, 1 << 16), min(n_names, 1 << 16)
    if (funcs + 4 * n_funcs > len(img) or names + 4 * n_names > len(img)
            or ords + 2 * n_names > len(img)):
        return {}
    addrs = np.frombuffer(img, "<u4", n_funcs, funcs).tolist()
    out: dict[int, str] = {}
    for nrva, o in zip(np.frombuffer(img, "<u4", n_names, names).tolist(),
                       np.frombuffer(img, "<u2", n_names, ords).tolist()):
        if o < n_funcs and not rva <= addrs[o] < rva + size:  # skip forwarders
            end = img.find(b"\0", nrva, nrva + 256) if 0 < nrva < len(img) else -1
            if end > 0:
                out.setdefault(addrs[o], bytes(img[nrva:end]).decode("latin-1"))
    for i, a in enumerate(addrs):
        if a and a not in out and not rva <= a < rva + size:
            out[a] = f"#{base + i}"
    return out
