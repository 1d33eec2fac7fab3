"""Fixtures of the corrupt-input tests: the generated corpus (damaged copies of the samples and of
a real EVTX log from the shared data, written under pytest's tmp folder)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corrupt_corpus  # noqa: E402


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, shared_data) -> Path:
    out = tmp_path_factory.mktemp("corrupt")
    corrupt_corpus.write_corpus(out, shared_data / "evtx" / "system.evtx")
    return out
