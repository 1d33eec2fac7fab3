"""Run the hpforensics CLI under a Python audit hook that logs every file opened and every mmap,
so a test can prove evidence was opened for reading only.

    python tests/soundness/audit_run.py LOG.jsonl -- ARGS...

Each line of LOG: {"event": "open", "path": ..., "mode": ..., "flags": ...} or
{"event": "mmap", "fd_path": ..., "access": ...}. Child processes are not followed (tests run
the commands with one worker).
"""
from __future__ import annotations

import json
import os
import sys

LOG = open(sys.argv[1], "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
_busy = False


def _hook(event: str, args: tuple) -> None:
    global _busy
    if _busy or event not in ("open", "mmap.__new__", "os.open"):
        return
    _busy = True
    try:
        if event == "open":
            path, mode, flags = args
            if isinstance(path, (str, bytes, os.PathLike)):
                rec = {"event": "open", "path": os.path.abspath(os.fsdecode(path)), "mode": mode,
                       "flags": flags}
                LOG.write(json.dumps(rec) + "\n")
        elif event == "mmap.__new__":
            fileno, _length, access, _offset = args
            target = os.readlink(f"/proc/self/fd/{fileno}") if fileno >= 0 else ""
            LOG.write(json.dumps({"event": "mmap", "fd_path": target, "access": access}) + "\n")
        LOG.flush()
    finally:
        _busy = False


if __name__ == "__main__":
    assert sys.argv[2] == "--"
    sys.addaudithook(_hook)
    from hpforensics.cli.app import main

    main(sys.argv[3:])
