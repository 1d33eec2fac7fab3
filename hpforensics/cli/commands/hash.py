"""`hpforensics hash FILE...`: per-page digests of files, one row per page."""
from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import InputError, UsageError

# show a progress bar only for inputs this large, and only on a terminal
PROGRESS_MIN_BYTES = 64 << 20


def hash_cmd(
    files: List[Path] = typer.Argument(..., help="Files to hash (opened read-only)."),
    algo: str = typer.Option("xxh128", "--algo", "-a", help="xxh128 or sha256."),
    page_size: int = typer.Option(4096, "--page-size", "-p",
                                  help="Page size, a power of two >= 16."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or jsonl."),
    out: Optional[Path] = typer.Option(  # noqa: UP007
        None, "-o", "--output", help="Write here, not stdout."),
    threads: Optional[int] = typer.Option(  # noqa: UP007
        None, "--threads", "-j", help="Threads (default: all cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Hash every page of each FILE: page, offset, length, digest, flags (zero)."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics import pagehash
    from hpforensics.report import FORMATS
    from hpforensics.report.render import render_to

    if algo not in pagehash.ALGORITHMS:
        raise UsageError(f"--algo must be one of {', '.join(pagehash.ALGORITHMS)}, not {algo!r}")
    if page_size < 16 or page_size & (page_size - 1):
        raise UsageError(f"--page-size must be a power of two >= 16, not {page_size}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, not {threads}")
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    for f in files:
        if not f.exists():
            raise UsageError(f"{f}: no such file")
        if not f.is_file():
            raise UsageError(f"{f}: not a regular file")
    total = sum(f.stat().st_size for f in files)
    records: list[pagehash.PageRecord] = []
    with _progress(total, enabled=not quiet) as advance:
        for f in files:
            try:
                ph = pagehash.hash_file(f, algo, page_size, threads=threads, progress=advance(f))
            except OSError as exc:
                raise InputError(f, exc.strerror or str(exc)) from None
            records += pagehash.page_records(str(f), ph)
    render_to(out, records, fmt, title=f"{algo} page digests ({page_size}-byte pages)")
    if out is not None:
        # lazy: CLI start-up (a command imports only what it runs)
        from hpforensics.custody import custody_block, sidecar_path, write_custody

        write_custody(sidecar_path(out), custody_block(
            "hash", files, {"algo": algo, "page_size": page_size, "format": fmt}))


def _progress(total: int, enabled: bool):
    """A rich progress bar on stderr for long inputs; yields advance(file) -> callback."""
    if not (enabled and total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()):
        return nullcontext(lambda f: None)
    return _bar(total)


class _bar:
    def __init__(self, total: int) -> None:
        # lazy: rich only where a terminal is drawn on
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TransferSpeedColumn)

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), console=Console(stderr=True),
                                 transient=True)
        self.task = self.progress.add_task("hashing", total=total)
        self.before = 0

    def __enter__(self):
        self.progress.start()
        return self.advance

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, path: Path):
        start = self.before
        self.before += path.stat().st_size
        self.progress.update(self.task, description=f"hashing {path.name}")

        def update(done: int, _size: int) -> None:
            self.progress.update(self.task, completed=start + done)

        return update


def register(app: typer.Typer) -> None:
    app.command("hash")(hash_cmd)
