"""Checks shared by the corrupt-input tests (a uniquely named module: `from conftest import`
resolves to whichever conftest.py pytest imported first when several test folders run)."""
from __future__ import annotations

import re
from pathlib import Path

# "hpforensics: error: FILE at offset 0x..: reason" / "hpforensics: warning: FILE at offset ..."
ONE_LINE = re.compile(r"^hpforensics: (error|warning): (?P<file>\S.*?)(?: at offset "
                      r"(?P<off>0x[0-9a-f]+))?: \S")
OFFSET = re.compile(r" at offset (0x[0-9a-f]+)")


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
