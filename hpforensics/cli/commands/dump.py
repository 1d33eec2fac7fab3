"""`hpforensics dump analyze`: the memory-image analysis through the Volatility 3 library."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import ExitCode

dump_app = typer.Typer(help="Analyse memory images (raw, crash dumps: whatever Volatility opens).",
                       no_args_is_help=True)


@dump_app.command("analyze")
def analyze_cmd(
    image: Path = typer.Argument(..., help="Memory image (raw physical memory, crash dump, ...)."),
    symbols: List[Path] = typer.Option([], "--symbols", "-s",
                                       help="Symbol directory (ISF), repeatable."),
    reference: List[Path] = typer.Option([], "--reference",
                                         help="Folder of on-disk PE files, repeatable."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="KB manifest."),
    store: Optional[Path] = typer.Option(None, "--store", help="Page-hash store database."),
    pid: List[int] = typer.Option([], "--pid", help="Only this process (repeatable)."),
    yara: Optional[Path] = typer.Option(None, "--yara", help="YARA rules run on changed ranges."),
    outdir: Path = typer.Option(..., "-o", "--output", help="Folder for CSV and JSON output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, no tables."),
) -> None:
    """Every hotpatch image and every changed image byte of every process and the kernel."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from hpforensics.memimage import options
    from hpforensics.memimage.analyze import analyze
    from hpforensics.memimage.report import print_tables, write_outputs
    from hpforensics.memimage.session import check_truncation, open_image

    refs = options.references(reference)
    kb = options.kb_lookup(manifest, store)
    rules = options.yara_rules(yara)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=quiet, console=None) as bar:
        task = bar.add_task("opening image (Volatility automagic)", total=100)
        session = open_image(image, symbols, progress=lambda pct, what: bar.update(
            task, completed=min(pct, 100) * 0.3, description=what or "automagic"))

        def step(what: str, done: int, total: int) -> None:
            bar.update(task, completed=30 + 70 * done / max(total, 1), description=what)

        result = analyze(session.context, session.kernel, source=f"dump:{image.name}",
                         references=refs, kb_lookup=kb, pids=pid or None, progress=step,
                         check_tables=lambda dtb: check_truncation(session, dtb, user=True),
                         yara=rules)
    inputs = {"image": str(image), "symbols": [str(s) for s in symbols],
              "reference": [str(r) for r in reference],
              "manifest": str(manifest) if manifest else None, "store": str(store) if store else None,
              "yara": str(yara) if yara else None}
    from hpforensics.custody import custody_block

    custody = custody_block("dump analyze", [image, manifest, store, yara], {"pid": sorted(pid)},
                            references=[*symbols, *reference])
    written = write_outputs(result, outdir, inputs, custody)
    if not quiet:
        print_tables(result, sys.stdout)
    for w in result.warnings:
        typer.echo(f"hpforensics: warning: {w}", err=True)
    typer.echo("wrote " + ", ".join(str(p) for p in written), err=True)
    if result.pages_beyond_end:
        raise typer.Exit(int(ExitCode.PARTIAL))


def register(app: typer.Typer) -> None:
    app.add_typer(dump_app, name="dump")
