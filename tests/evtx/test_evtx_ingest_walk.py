"""discover() lists a folder's files as sorted(rglob) did, through os.walk, plus the FIFOs,
devices and sockets in it (refused with a warning when read, not skipped unseen)."""
from __future__ import annotations

import os
from pathlib import Path

from hpforensics.evtx.ingest import _files_under, discover


def test_files_under_equals_sorted_rglob_with_links(tmp_path, shared_data) -> None:
    root = tmp_path / "collection"
    (root / "HOST-1" / "C" / "Logs").mkdir(parents=True)
    (root / "HOST-1" / "C" / "Logs" / "System.evtx").write_bytes(b"x")
    (root / "HOST-1" / ".hidden.evtx").write_bytes(b"y")
    (root / "HOST-1" / "notes.txt").write_text("z")
    os.symlink(shared_data / "evtx", root / "linked-folder")  # not entered, as rglob
    os.symlink(shared_data / "evtx" / "system.evtx", root / "linked.evtx")  # a file: kept
    os.symlink(tmp_path / "missing", root / "broken.evtx")  # not a file
    os.mkfifo(root / "fifo.evtx")  # not a file: listed, so that reading it is refused aloud
    for given in (root, Path(os.path.relpath(root))):
        want = sorted(f for f in given.rglob("*") if f.is_file() or f.is_fifo())
        assert [str(p) for p in _files_under(given)] == [str(p) for p in want]
    names = [Path(i.source).name for i in discover([root])]
    assert names == [".hidden.evtx", "System.evtx", "fifo.evtx", "linked.evtx"]
