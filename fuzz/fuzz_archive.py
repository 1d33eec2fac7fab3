"""Fuzz triage archives (ingest.py): the zip's central directory and member names (path
separators, `..`, absolute names, names flagged UTF-8 that are not), the bound on what a
member may expand to, the copy of each member to the scratch folder, and the readers behind
it (read_item). The input is the .zip file.

discover() may refuse the archive (InputError); read_item must never raise, and nothing may
be written outside the scratch folder (checked: a member escaping it would land beside it).
"""
from __future__ import annotations

import os
import tempfile

import _harness

with _harness.instrumented():
    from hpforensics.errors import InputError
    from hpforensics.evtx.ingest import discover
    from hpforensics.timeline.reading import read_item

_DIR = tempfile.mkdtemp(prefix="hpf-fuzz-zip-")
ZIP = os.path.join(_DIR, "Collection-FUZZ.zip")
SCRATCH = os.path.join(_DIR, "scratch")
os.makedirs(SCRATCH, exist_ok=True)
os.environ["TMPDIR"] = SCRATCH
tempfile.tempdir = SCRATCH  # the members' copies go in here, and are gone after each read


def test_one(data: bytes) -> None:
    with open(ZIP, "wb") as fh:
        fh.write(data)
    try:
        items = discover([ZIP])
    except InputError:
        return
    for item in items[:16]:
        read_item(item, hash_inputs=True)
    left = sorted(set(os.listdir(_DIR)) - {"Collection-FUZZ.zip", "scratch"})
    if left or os.listdir(SCRATCH):
        raise AssertionError(f"written outside a member's scratch copy: {left} "
                             f"{os.listdir(SCRATCH)}")


if __name__ == "__main__":
    _harness.main(test_one)
