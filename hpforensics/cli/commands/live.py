"""`hpforensics live`: verify the code of running processes against their files, read-only."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import ExitCode, UsageError

FORMATS = ("table", "json", "jsonl", "csv")


def live_cmd(
    pid: List[int] = typer.Option([], "--pid", help="Only this process (repeatable)."),
    name: List[str] = typer.Option([], "--name", help="Process name glob (repeatable)."),
    reference: List[Path] = typer.Option([], "--reference", help="Folder of on-disk PE files."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="KB manifest (PE images)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Page-hash store (PE images)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, jsonl or csv."),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here, not stdout."),
    yara: Optional[Path] = typer.Option(None, "--yara", help="YARA rules run on changed code."),
    yara_all: bool = typer.Option(False, "--yara-all",
                                  help="Run --yara over every executable mapping, not only "
                                       "changed code."),
    read_all: bool = typer.Option(False, "--read-all",
                                  help="Read every page, even those the OS says are unchanged."),
    fail_on_findings: bool = typer.Option(False, "--fail-on-findings",
                                          help="Exit 1 when anything is unexplained."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Scan running processes: every changed code byte of every mapped image, with a verdict."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.live.options import build_options
    from hpforensics.live.progress import progress_bar
    from hpforensics.report.live import write_report
    from hpforensics.model import Verdict
    from hpforensics.live.space import scan_live, select_backend

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if yara_all and yara is None:
        raise UsageError("--yara-all needs --yara RULES")
    options = build_options(reference, manifest, store, yara, read_all, yara_all)
    backend = select_backend()
    with progress_bar(enabled=not quiet) as progress:
        result = scan_live(backend, pids=pid, names=name, options=options, progress=progress)
    inputs = {"source": backend.source, "backend": backend.name, "pid": list(pid),
              "name": list(name), "reference": [str(r) for r in reference],
              "manifest": str(manifest) if manifest else None,
              "store": str(store) if store else None, "yara": str(yara) if yara else None,
              "read_all": read_all, "yara_all": yara_all}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8", newline="") as fh:
            write_report(result, fmt, fh, out, inputs)
    else:
        write_report(result, fmt, sys.stdout, inputs=inputs)
    for w in result.warnings:
        typer.echo(f"hpforensics: warning: {w}", err=True)
    if pid:
        # processes asked for by number must be read; a whole-host scan reports those it
        # could not read in the summary and still succeeds
        unread = [p for p in result.processes if p.status != "ok"]
        missing = [w for w in result.warnings if w.endswith("no such process")]
        if not any(p.status == "ok" for p in result.processes):
            reasons = [f"pid {p.pid}: {p.status}" for p in unread] + missing
            raise UsageError("; ".join(reasons) or "nothing scanned")
        if unread or missing:
            raise typer.Exit(int(ExitCode.PARTIAL))
    if fail_on_findings and any(f.verdict is Verdict.UNEXPLAINED for f in result.findings):
        raise typer.Exit(int(ExitCode.FINDINGS))


def register(app: typer.Typer) -> None:
    app.command("live")(live_cmd)
