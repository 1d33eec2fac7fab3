"""The chain-of-custody block every report carries: which tool and version, run how, over which
inputs (path, size, SHA-256, modification time). Built from `evidence.describe_input`, which opens
each input read-only.

The block holds nothing that changes between runs over the same inputs (no wall-clock time, no
host name), so reports stay byte-identical across runs; when a report was made is the file's
own metadata.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import platform
import stat
from pathlib import Path
from typing import Any, Iterable, Mapping

from hpforensics import __version__
from hpforensics.evidence import InputRecord, describe_input, hashed_input
from hpforensics.textsafe import shown

log = logging.getLogger(__name__)

MAX_FILES_PER_FOLDER = 100_000  # a folder named as input is described file by file, up to this


def input_records(paths: Iterable[str | os.PathLike[str] | None],
                  hashed: Mapping[str, str] | None = None) -> list[InputRecord]:
    """One record per input file; folders are described file by file in sorted order; None and
    repeated paths are skipped. `hashed` (path -> SHA-256) are hashes the command took on its
    own read of a file, the bytes it analysed: reused, so no input is read twice for custody."""
    hashed = hashed or {}
    out: list[InputRecord] = []
    seen: set[str] = set()
    for given in paths:
        if given is None or str(given) == "":
            continue
        p = Path(given)
        files = [p]
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file())[:MAX_FILES_PER_FOLDER]
        for f in files:
            key = shown(f)  # as the command named it in its own results
            if key in seen or _special(f):
                continue
            seen.add(key)
            out.append(hashed_input(f, hashed[key]) if hashed.get(key) else describe_input(f))
    return out


def _special(path: Path) -> bool:
    """A FIFO, device or socket (or a symlink to one): the command refused it with a warning
    and read nothing of it, so there is nothing to hash (opening a FIFO would block)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # missing: describe_input says so


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def custody_block(command: str, inputs: Iterable[str | os.PathLike[str] | None],
                  options: Mapping[str, Any] | None = None,
                  references: Iterable[str | os.PathLike[str] | None] = (),
                  hashed: Mapping[str, str] | None = None) -> dict[str, Any]:
    """{"tool": {...}, "command": ..., "options": {...}, "inputs": [{path, size, sha256, mtime}],
    "references": [paths]}.

    `inputs` is the evidence, hashed file by file. `references` are reference collections (symbol
    packs, folders of on-disk binaries) that may hold gigabytes: named, not hashed; the report
    names the reference file used for each module. Options that only change speed (threads,
    jobs, workers) are left out by the callers so reports stay identical across them."""
    block = {
        "tool": {"name": "hpforensics", "version": __version__,
                 "python": platform.python_version()},
        "command": command,
        "options": _plain(dict(options or {})),
        "inputs": [dataclasses.asdict(r) for r in input_records(inputs, hashed)],
    }
    refs = [os.fspath(r) for r in references if r is not None]
    if refs:
        block["references"] = refs
    return block


def write_custody(path: str | os.PathLike[str], block: Mapping[str, Any]) -> Path:
    """Write the block as JSON (sorted keys, one trailing newline) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(block, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """Where the custody block of a single-file report goes: `<output>.custody.json`."""
    out = Path(output)
    return out.with_name(out.name + ".custody.json")
