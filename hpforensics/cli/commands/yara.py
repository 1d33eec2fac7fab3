"""`hpforensics yara RULES TARGET...`: scan files and folders with a rule set."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import ExitCode
from hpforensics.report.render import render_to

COLUMNS = ["module", "address", "rule", "namespace", "tags", "string_id", "matched", "source"]


def yara_cmd(
    rules: Path = typer.Argument(..., help="A rule file or a folder of .yar/.yara files."),
    targets: List[Path] = typer.Argument(..., help="Files or folders to scan."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or jsonl."),
    out: Optional[Path] = typer.Option(None, "-o", "--output", help="Write here, not stdout."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not reuse compiled rules."),
) -> None:
    """Scan files and folders with YARA rules (compiled once, cached by content hash)."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.yarascan import load_rules, scan_paths

    ruleset = load_rules([rules], use_cache=not no_cache)
    warnings: list[str] = []
    hits = list(scan_paths(ruleset, targets, warnings))
    render_to(out, hits, fmt, columns=COLUMNS if fmt in ("table", "csv") else None,
              title=f"YARA hits ({len(hits)})")
    if out is not None:
        # lazy: CLI start-up (a command imports only what it runs)
        from hpforensics.custody import custody_block, sidecar_path, write_custody

        write_custody(sidecar_path(out), custody_block("yara", [rules, *targets], {"format": fmt}))
    for w in warnings:
        typer.echo(f"hpforensics: warning: {w}", err=True)
    if warnings:
        raise typer.Exit(int(ExitCode.PARTIAL))


def register(app: typer.Typer) -> None:
    app.command("yara")(yara_cmd)
