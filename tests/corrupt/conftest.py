"""Fixtures of the corrupt-input tests: the generated corpus, and checks shared by every case."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corrupt_corpus  # noqa: E402

# "hpforensics: error: FILE at offset 0x..: reason" / "hpforensics: warning: FILE at offset ..."
ONE_LINE = re.compile(r"^hpforensics: (error|warning): (?P<file>\S.*?)(?: at offset (?P<off>0x[0-9a-f]+))?: \S")
OFFSET = re.compile(r" at offset (0x[0-9a-f]+)")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, shared_data) -> Path:
    out = tmp_path_factory.mktemp("corrupt")
    corrupt_corpus.write_corpus(out, shared_data / "evtx" / "system.evtx")
    return out


def check_clean_failure(proc, path: Path, codes=(2,), need_offset: bool = True) -> re.Match:
    """Exit code documented, no traceback, and a one-line message naming the file (and offset)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in codes, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("hpforensics: ")]
    named = [ONE_LINE.match(ln) for ln in lines if path.name in ln]
    named = [m for m in named if m]
    assert named, f"no one-line message naming {path.name}:\n{proc.stderr}"
    if need_offset:
        with_offset = [m for m in named if OFFSET.search(m.string)]
        assert with_offset, f"no offset in:\n{proc.stderr}"
        return with_offset[0]
    return named[0]
