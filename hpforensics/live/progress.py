"""A rich progress bar on stderr: processes done / total. Silent when stderr is not wanted."""
from __future__ import annotations

import contextlib
from typing import Iterator

from hpforensics.live.space import Progress, ProcessInfo


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    # lazy: rich only where a terminal is drawn on
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn

    console = Console(stderr=True)
    with Bar(TextColumn("processes"), BarColumn(), MofNCompleteColumn(),
             TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=None)

        def update(done: int, total: int, proc: ProcessInfo) -> None:
            bar.update(task, completed=done, total=total, description=f"{proc.pid} {proc.name}")

        yield update
