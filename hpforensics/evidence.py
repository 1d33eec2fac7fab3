"""Evidence is opened read-only and described for the chain of custody."""
from __future__ import annotations

import datetime as dt
import hashlib
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hpforensics.errors import InputError


@dataclass(frozen=True)
class InputRecord:
    """What a report records of each input: enough to prove it was not changed."""

    path: str
    size: int
    sha256: str
    mtime: str  # UTC ISO 8601


def open_evidence(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file for reading only; a missing or unreadable file is a one-line InputError."""
    try:
        return open(path, "rb")  # noqa: SIM115 - caller owns the handle
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None


def map_evidence(path: str | os.PathLike[str]) -> mmap.mmap | bytes:
    """Map a file read-only (ACCESS_READ: the kernel refuses writes); empty files give b''."""
    with open_evidence(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return b""
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def describe_input(path: str | os.PathLike[str]) -> InputRecord:
    p = Path(path)
    digest = hashlib.sha256()
    with open_evidence(p) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
        st = os.fstat(fh.fileno())
    return _record(p, st, digest.hexdigest())


def hashed_input(path: str | os.PathLike[str], sha256: str) -> InputRecord:
    """The record of an input whose SHA-256 was taken on the command's own read of it."""
    return _record(Path(path), os.stat(path), sha256)


def _record(p: Path, st: os.stat_result, sha256: str) -> InputRecord:
    mtime = dt.datetime.fromtimestamp(st.st_mtime, tz=dt.timezone.utc).isoformat()
    return InputRecord(str(p), st.st_size, sha256, mtime.replace("+00:00", "Z"))
