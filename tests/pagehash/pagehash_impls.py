"""Which code paths of the C core this CPU offers (a uniquely named module: `from conftest
import` would resolve to another folder's conftest when several test folders run together)."""
from __future__ import annotations

from hpforensics import _pagehash

IMPLS = {
    "xxh128": ["scalar", "sse2", "avx2", "avx512", "neon"],
    "sha256": ["portable", "shani"],
    "compare": ["scalar", "sse2", "avx2", "avx512"],
}


def available(kind: str) -> list[str]:
    names = []
    for name in IMPLS[kind]:
        try:
            _pagehash._set_impl(kind, name)
        except ValueError:
            continue
        names.append(name)
    _pagehash._set_impl(kind, "auto")
    return names
