"""`hpforensics calendar`: show the release calendar; `calendar update FILE` extends it."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import UsageError

COLUMNS = ("product", "month", "kind", "kb", "build", "date", "verified", "source", "note")

calendar_app = typer.Typer(
    help="Windows hotpatch release calendar: baseline / hotpatch / out-of-band / standard.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@calendar_app.callback()
def show(
    ctx: typer.Context,
    product: Optional[str] = typer.Option(  # noqa: UP007
        None, "--product", "-p", help="windows11-24h2, windows11-25h2 or windows-server-2025."
    ),
    start: Optional[str] = typer.Option(  # noqa: UP007
        None, "--from", help="First month, YYYY-MM."),
    end: Optional[str] = typer.Option(None, "--to", help="Last month, YYYY-MM."),  # noqa: UP007
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or jsonl."),
) -> None:
    """List releases; months without data are filled in from the cadence rule."""
    if ctx.invoked_subcommand is not None:
        return
    from hpforensics.kb.calendar import Calendar, parse_month
    from hpforensics.report import FORMATS, render

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    for value, opt in ((start, "--from"), (end, "--to")):
        if value:
            try:
                parse_month(value)
            except ValueError as exc:
                raise UsageError(f"{opt}: {exc}") from None
    cal = Calendar.default()
    if product and product not in cal.products:
        raise UsageError(f"unknown product {product!r}; known: {', '.join(cal.products)}")
    rows = []
    for prod in [product] if product else cal.products:
        have = cal.releases(prod)
        if not have:
            continue
        first = start or have[0].month
        last = end or max(r.month for r in have)
        if first > last:
            raise UsageError(f"--from {first} is after --to {last}")
        rows += cal.timeline(prod, first, last)
    render(rows, fmt, columns=COLUMNS, title="Release calendar")


@calendar_app.command("update")
def update(
    file: Path = typer.Argument(..., help="CSV with calendar columns (see docs/calendar.md)."),
) -> None:
    """Validate FILE and merge it into the user calendar (stored in $HPF_DATA_DIR)."""
    from hpforensics.kb.calendar_io import update_user_calendar

    path, added, replaced = update_user_calendar(file)
    typer.echo(f"{path}: {added} row(s) added, {replaced} replaced")


@calendar_app.command("classify")
def classify_cmd(
    values: List[str] = typer.Argument(
        ..., help="KB numbers or OS builds (26100.3107, 10.0.26200.7392)."),
    product: Optional[str] = typer.Option(  # noqa: UP007
        None, "--product", "-p", help="Restrict to one product."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or jsonl."),
) -> None:
    """Classify KBs / builds: baseline, hotpatch, out-of-band, standard (or the nearest release)."""
    from hpforensics.kb.calendar import Calendar
    from hpforensics.report import FORMATS, render

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    cal = Calendar.default()
    rows = []
    for value in values:
        c = cal.classify(value, product)
        r = c.release
        exact = r if r and c.exact else None
        rows.append({
            "value": value, "kind": c.kind.value if c.kind else "",
            "product": r.product if r else "", "month": r.month if r else "",
            "kb": exact.kb if exact else "", "build": exact.build if exact else "",
            "verified": exact.verified if exact else None, "note": c.note or (r.note if r else ""),
        })
    render(rows, fmt, title="Classification")


def register(app: typer.Typer) -> None:
    app.add_typer(calendar_app, name="calendar")
