"""Fixtures for the page-hash tests: every implementation the CPU offers, one at a time."""
from __future__ import annotations

import pytest

from hpforensics import _pagehash


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
