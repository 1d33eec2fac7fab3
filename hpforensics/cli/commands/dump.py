"""`hpforensics dump analyze`: the memory-image analysis through the Volatility 3 library."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import ExitCode
from hpforensics.textsafe import clean, shown

dump_app = typer.Typer(help="Analyse memory images (raw, crash dumps: whatever Volatility opens).",
                       no_args_is_help=True)


@dump_app.command("analyze")
def analyze_cmd(
    images: List[Path] = typer.Argument(..., metavar="IMAGE...",
                                        help="Memory image(s) (raw physical memory, crash dump, "
                                             "...); several: one output folder each."),
    symbols: List[Path] = typer.Option([], "--symbols", "-s",
                                       help="Symbol directory (ISF), repeatable."),
    reference: List[Path] = typer.Option([], "--reference",
                                         help="Folder of on-disk PE files, repeatable."),
    manifest: Optional[Path] = typer.Option(
        None, "--manifest", help="KB manifest (file or folder): names KBs; with page hashes, "
                                 "also a reference after the store."),
    store: Optional[Path] = typer.Option(
        None, "--store", help="Page-hash store database: names KBs and verifies modules no "
                              "--reference file matches."),
    pid: List[int] = typer.Option([], "--pid", help="Only this process (repeatable)."),
    yara: Optional[Path] = typer.Option(None, "--yara", help="YARA rules run on changed ranges."),
    yara_all: bool = typer.Option(
        False, "--yara-all", help="Run --yara over every image region, not only changed ranges."),
    outdir: Path = typer.Option(..., "-o", "--output", help="Folder for CSV and JSON output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, no tables."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Analyse each image as a task on this Dask scheduler "
                                  "(tcp://host:8786); images and output on shared storage."),
    workers: Optional[int] = typer.Option(
        None, "--workers", help="Analyse each image as a task on a local Dask cluster of N "
                                "worker processes."),
) -> None:
    """Every hotpatch image and every changed image byte of every process and the kernel."""
    if scheduler or workers or len(images) > 1:
        _fleet(images, outdir, scheduler, workers, quiet, dict(
            symbols=symbols, reference=reference, manifest=manifest, store=store, pid=pid,
            yara=yara, yara_all=yara_all))
        return
    # lazy: rich only where a terminal is drawn on
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.report.memory import print_tables
    from hpforensics.runs.dump import DumpOptions, run_dump
    from hpforensics.staging import staged_outputs

    opts = DumpOptions(symbols, reference, manifest, store, pid, yara, yara_all)
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
    # outputs written in a staging folder, put in place when complete (interrupted: none is)
    with staged_outputs(outdir) as stage, \
            Progress(*columns, transient=True, disable=quiet, console=None) as bar:
        task = bar.add_task("opening image (Volatility automagic)", total=100)

        def step(what: str, done: int, total: int) -> None:
            bar.update(task, completed=30 + 70 * done / max(total, 1), description=what)

        run = run_dump(images[0], stage, opts, step=step,
                       open_progress=lambda pct, what: bar.update(
                           task, completed=min(pct, 100) * 0.3, description=what or "automagic"))
    if not quiet:
        print_tables(run.analysis, sys.stdout)
    for w in run.analysis.warnings:
        typer.echo(f"hpforensics: warning: {clean(w)}", err=True)
    typer.echo("wrote " + ", ".join(shown(outdir / p.name) for p in run.written), err=True)
    if run.damaged:
        raise typer.Exit(int(ExitCode.PARTIAL))


def _fleet(images: List[Path], outdir: Path, scheduler: Optional[str], workers: Optional[int],
           quiet: bool, args: dict) -> None:
    """One task per image (hpforensics.fleet.dumps): <out>/<image>/ as a single run writes it,
    plus dumps.csv, roll-ups with a dump column, Parquet partitions and failures.csv."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.fleet.cluster import ClusterSpec, failures_warning
    from hpforensics.fleet.dumps import analyze_dumps

    result = analyze_dumps(images, outdir, args, ClusterSpec(scheduler, workers),
                           show_progress=not quiet)
    for d in result.dumps:
        for w in d.warnings:
            typer.echo(f"hpforensics: warning: {d.dump}: {w}", err=True)
    if result.failures:
        typer.echo(failures_warning(result.failures, outdir / "failures.csv", "image"), err=True)
    typer.echo(f"{len(result.dumps)}/{result.tasks} image(s) analysed; outputs in {outdir}",
               err=True)
    if result.partial:
        raise typer.Exit(int(ExitCode.PARTIAL))


def register(app: typer.Typer) -> None:
    app.add_typer(dump_app, name="dump")
