"""Fixtures for the page-hash tests: every implementation the CPU offers, one at a time."""
from __future__ import annotations

import pytest

from hpforensics import _pagehash

IMPLS = {
    "xxh128": ["scalar", "sse2", "avx2", "avx512"],
    "sha256": ["portable", "shani"],
    "compare": ["scalar", "sse2", "avx2"],
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


@pytest.fixture
def use_impl():
    """use_impl(kind, name) forces a code path for the rest of the test."""
    used: set[str] = set()

    def _use(kind: str, name: str) -> None:
        used.add(kind)
        _pagehash._set_impl(kind, name)

    yield _use
    for kind in used:
        _pagehash._set_impl(kind, "auto")
