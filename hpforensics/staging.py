"""Outputs that cannot pass for complete: a run writes into a staging folder inside its output
folder and renames what it wrote into place only when it has finished.

An interrupted run (SIGINT, SIGTERM) or one that runs out of space (ENOSPC, EDQUOT, or EFBIG
under a file-size limit) removes its staging folder and ends with one line saying it did not
finish; the output folder keeps only what a finished run wrote. A run killed outright
(SIGKILL, power loss) leaves `.hpf-partial-*`, which the next run in that folder removes.

Two runs given the same output folder would interleave their rows: the folder itself is
locked (flock on the directory, released by the kernel however the run ends), and the second
run refuses to start.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from hpforensics.errors import ExitCode, HPFError, UsageError
from hpforensics.textsafe import shown

try:
    import fcntl
except ImportError:  # Windows: no flock; the staging still applies
    fcntl = None  # type: ignore[assignment]

STAGE_PREFIX = ".hpf-partial-"
_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class Terminated(BaseException):
    """SIGTERM, raised where the run is, as SIGINT raises KeyboardInterrupt (a BaseException,
    so that no `except Exception` on the way swallows it)."""


class RunUnfinished(HPFError):
    """The run stopped before its outputs were complete; none were put in place."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[assignment]


def _terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (a fleet worker)
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _lock(outdir: Path) -> int:
    fd = os.open(outdir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f"{shown(outdir)}: another hpforensics run is writing its outputs "
                         "here; not started (give another --output)") from None
    return fd


def _commit(stage: Path, outdir: Path) -> None:
    for entry in sorted(stage.iterdir()):
        final = outdir / entry.name
        if final.is_dir() and not final.is_symlink() and entry.is_dir():
            shutil.rmtree(final)  # an earlier run's folder of the same name
        os.replace(entry, final)
    stage.rmdir()


def _why(exc: BaseException) -> tuple[str, int] | None:
    """The reason and exit code of a run that stopped early, None for any other error."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT)", 130
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM)", 128 + signal.SIGTERM
    if isinstance(exc, OSError) and exc.errno in _SPACE:
        where = f" writing {shown(exc.filename)}" if exc.filename else ""
        return f"{os.strerror(exc.errno)}{where}", int(ExitCode.USER_ERROR)
    return None


@contextlib.contextmanager
def staged_outputs(outdir: Path) -> Iterator[Path]:
    """The folder to write the run's outputs in; they move to `outdir` when the block ends
    without an error. See the module's docstring."""
    outdir.mkdir(parents=True, exist_ok=True)
    lock = _lock(outdir)
    try:
        for stale in outdir.glob(STAGE_PREFIX + "*"):  # a killed run's (the lock is ours)
            shutil.rmtree(stale, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=outdir))
        try:
            with _sigterm_raises():
                yield stage
                _commit(stage, outdir)
        except BaseException as exc:
            shutil.rmtree(stage, ignore_errors=True)
            _raise_unfinished(outdir, exc)
            raise
    finally:
        os.close(lock)


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` (one output file: `pe info -o`, `pe diff -o`) that is
    renamed to `path` when the block ends without an error, removed when it does not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{STAGE_PREFIX}{os.getpid()}-{path.name}")
    try:
        with _sigterm_raises():
            yield tmp
            os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _raise_unfinished(path, exc)
        raise


def _raise_unfinished(output: Path, exc: BaseException) -> None:
    """RunUnfinished for a run that stopped early (returns for any other error)."""
    why = _why(exc)
    if why is not None:
        raise RunUnfinished(f"{shown(output)}: the run did not finish ({why[0]}): no "
                            "outputs were put in place", why[1]) from None
