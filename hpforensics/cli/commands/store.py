"""`hpforensics store build|lookup`: the page-hash store of normalised executable pages."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import ExitCode, UsageError

store_app = typer.Typer(help="Page-hash store: which image version and KB a page or module is.",
                        no_args_is_help=True)


@store_app.command("build")
def build_cmd(
    dirs: List[Path] = typer.Argument(..., help="Folders (or files) of binaries to import."),
    db: Path = typer.Option(..., "--db", help="SQLite store to create or extend."),
    kb: List[str] = typer.Option([], "--kb", help="KB that ships these binaries (repeatable)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Worker processes."),  # noqa: UP007
) -> None:
    """Import every PE under DIRS: normalised digests of all executable pages."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.kb.store import PageStore
    from hpforensics.kb.store_build import build

    with PageStore(db, create=True) as store:
        report = build(store, dirs, kb, workers=workers,
                       progress=lambda n: typer.echo(f"  {n} files...", err=True))
        stats = store.stats()
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.custody import custody_block, sidecar_path, write_custody

    # the store accumulates runs; the sidecar records this run's inputs
    write_custody(sidecar_path(db), custody_block("store build", dirs, {"kb": list(kb)}))
    for skip in report.skipped:
        typer.echo(f"skipped {skip.path}: {skip.reason}", err=True)
    rate = report.pages / report.seconds if report.seconds else 0.0
    typer.echo(
        f"{db}: {report.added} image version(s) added ({report.pages} pages, {rate:,.0f} pages/s), "
        f"{report.known} already known, {len(report.skipped)} file(s) skipped; store holds "
        f"{stats['images']} images, {stats['pages']} pages"
    )
    if report.errors:
        raise typer.Exit(int(ExitCode.PARTIAL))


@store_app.command("lookup")
def lookup_cmd(
    target: Path = typer.Argument(
        ..., help="A PE file, or a memory dump of one module (with --base)."
    ),
    db: Path = typer.Option(..., "--db", help="SQLite store built with `store build`."),
    base: Optional[str] = typer.Option(  # noqa: UP007
        None, "--base", help="Load address of a dumped module: TARGET is a memory (mapped) layout."
    ),
    name: Optional[str] = typer.Option(
        None, "--name", help="Image name (default: TARGET's file name)."
    ),  # noqa: UP007
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, jsonl or csv."),
) -> None:
    """Which stored version TARGET is (or the nearest), its KBs, and the pages that match none."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.evidence import open_evidence
    from hpforensics.kb.store import PageStore
    from hpforensics.kb.store_report import lookup_rows
    from hpforensics.report import FORMATS, render

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    base_addr = _parse_addr(base) if base is not None else None
    with open_evidence(target) as fh:
        data = fh.read()
    with PageStore(db) as store:
        match = store.identify_image(
            data, name or target.name, mapped=base_addr is not None, path=str(target)
        )
        rows = lookup_rows(match, base_addr or 0)
    title = f"{match.name}: " + (
        f"{'exact' if match.exact else 'nearest'} version {match.best.version.timestamp:#010x}"
        if match.best
        else "no version in store"
    )
    render(rows, fmt, title=title)


def _parse_addr(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise UsageError(f"--base: not an address: {text!r}") from None


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
