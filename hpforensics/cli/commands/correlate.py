"""`hpforensics correlate`: per KB, installed per the logs vs live in memory."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from hpforensics.errors import UsageError


def correlate(
    timeline: Path = typer.Option(
        ..., "--timeline", help="Output folder of `hpforensics timeline`."),
    findings: Path = typer.Option(
        ..., "--findings", help="Findings JSON of pe diff / dump analyze / live."),
    device: Optional[str] = typer.Option(  # noqa: UP007
        None, "--device", help="Device in the timeline (needed when it holds several)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or jsonl."),
    output: Optional[Path] = typer.Option(  # noqa: UP007
        None, "--output", "-o", help="Write here, not stdout."),
) -> None:
    """Join a device's update timeline with memory findings of the same device."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.timeline.correlate import KbCorrelation, correlate_dir
    from hpforensics.report import FORMATS
    from hpforensics.report.render import render_to

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    rows = correlate_dir(timeline, findings, device)
    render_to(output, rows, fmt, title="Installed per the logs vs live in memory",
              columns=[f.name for f in dataclasses.fields(KbCorrelation)])


def register(app: typer.Typer) -> None:
    app.command("correlate")(correlate)
