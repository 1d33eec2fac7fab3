"""Which code paths of the C core this CPU offers (a uniquely named module: `from conftest
import` would resolve to another folder's conftest when several test folders run together)."""
from __future__ import annotations

from hpforensics.pagehash import available_implementations as available

# every name the binding knows, available here or not
IMPLS = {
    "xxh128": ["scalar", "sse2", "avx2", "avx512", "neon"],
    "sha256": ["portable", "shani"],
    "compare": ["scalar", "sse2", "avx2", "avx512"],
}

__all__ = ["IMPLS", "available"]
