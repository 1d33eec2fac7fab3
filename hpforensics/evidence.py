"""Evidence is opened read-only and described for the chain of custody."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import mmap
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from hpforensics.errors import InputError
from hpforensics.textsafe import shown


@dataclass(frozen=True)
class InputRecord:
    """What a report records of each input: enough to prove it was not changed."""

    path: str
    size: int
    sha256: str
    mtime: str  # UTC ISO 8601


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"))


def special_kind(mode: int) -> str:
    """What a non-regular file is ('' for a regular file): reading a FIFO or a terminal blocks,
    /dev/zero never ends, so evidence is only ever read from regular files."""
    if stat.S_ISREG(mode):
        return ""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def refusal(path: str | os.PathLike[str], mode: int) -> str:
    """The one-line reason a non-regular file is not read; a symlink names its target."""
    what = special_kind(mode)
    if os.path.islink(path):
        what = f"a symbolic link to {what} ({os.readlink(path)})"
    return f"is {what}, not a regular file: not read"


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """stat() the file (never blocks, unlike open() on a FIFO) and refuse anything but a
    regular file with an InputError naming what it is."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(path, refusal(path, st.st_mode))
    return st


def open_evidence(path: str | os.PathLike[str]) -> io.BufferedReader:
    """Open a regular file for reading only; a missing, unreadable or non-regular file (FIFO,
    device, socket, a symlink to one) is a one-line InputError. The open is O_NONBLOCK, so a
    FIFO swapped in after any earlier check still cannot block it; fstat() then decides."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise InputError(path, "is a directory, expected a file")
        raise InputError(path, refusal(path, mode))
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)  # a regular file: reads as usual
    fh = open(fd, "rb")  # noqa: SIM115 - caller owns the handle
    cast(io.FileIO, fh.raw).name = os.fspath(path)  # messages name the file, not the descriptor
    return fh


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


class BackgroundHash:
    """The SHA-256 of a file taken on a thread while the command works on it.

    A memory image is read whole only for its custody hash (the analysis reads a few per cent
    of it); file reads and hashlib's updates of 1 MiB release the GIL, so on two cores the
    hash costs next to no wall time. Daemon: an analysis that fails does not wait for it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="custody-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._digest = describe_input(self.path).sha256
        except BaseException as e:  # re-raised in the caller's thread by result()
            self._error = e

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest


def hashed_input(path: str | os.PathLike[str], sha256: str) -> InputRecord:
    """The record of an input whose SHA-256 was taken on the command's own read of it."""
    return _record(Path(path), os.stat(path), sha256)


def _record(p: Path, st: os.stat_result, sha256: str) -> InputRecord:
    mtime = dt.datetime.fromtimestamp(st.st_mtime, tz=dt.timezone.utc).isoformat()
    return InputRecord(shown(p), st.st_size, sha256, mtime.replace("+00:00", "Z"))
