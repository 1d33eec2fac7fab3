"""`hpforensics calendar`: show the release calendar; `calendar update FILE...` extends it from
CSV files or Microsoft's saved pages; `calendar check` lists months not confirmed up to today."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import UsageError

COLUMNS = ("product", "month", "kind", "kb", "build", "date", "verified", "source", "note")

def _calendar(fmt: str, product: str | None = None):
    """The user's calendar, once --format (and --product, when given) are known good."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.kb.calendar import Calendar
    from hpforensics.report import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    cal = Calendar.default()
    if product and product not in cal.products:
        raise UsageError(f"unknown product {product!r}; known: {', '.join(cal.products)}")
    return cal


calendar_app = typer.Typer(
    help="Windows hotpatch release calendar: baseline / hotpatch / out-of-band / standard.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@calendar_app.callback()
def show(
    ctx: typer.Context,
    product: Optional[str] = typer.Option(  # noqa: UP007
        None, "--product", "-p",
        help="windows11-24h2, windows11-25h2, windows11-26h2 or windows-server-2025."
    ),
    start: Optional[str] = typer.Option(  # noqa: UP007
        None, "--from", help="First month, YYYY-MM."),
    end: Optional[str] = typer.Option(None, "--to", help="Last month, YYYY-MM."),  # noqa: UP007
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or jsonl."),
) -> None:
    """List releases; months without data are filled in from the cadence rule."""
    if ctx.invoked_subcommand is not None:
        return
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.kb.calendar import parse_month
    from hpforensics.report import render

    cal = _calendar(fmt, product)
    for value, opt in ((start, "--from"), (end, "--to")):
        if value:
            try:
                parse_month(value)
            except ValueError as exc:
                raise UsageError(f"{opt}: {exc}") from None
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
    files: List[Path] = typer.Argument(  # noqa: UP006
        ..., help="CSV files with calendar columns, or Microsoft pages as saved from a browser "
                  "(release information, update history, hotpatch release notes; HTML or "
                  "Markdown). See docs/calendar.md."),
) -> None:
    """Merge FILES into the user calendar (stored in $HPF_DATA_DIR), printing what changed."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.kb.calendar_io import read_csv, update_user_calendar
    from hpforensics.kb.calendar_pages import read_page, update_from_page

    for file in files:  # every file is read before anything is stored: a bad one stops all
        read_csv(file) if file.suffix.lower() == ".csv" else read_page(file)
    for file in files:
        if file.suffix.lower() == ".csv":
            path, added, replaced = update_user_calendar(file)
            typer.echo(f"{path}: {added} row(s) added, {replaced} replaced")
            continue
        report = update_from_page(file)
        for line in report.lines:
            typer.echo(line)
        skipped = "".join(f"; skipped {s}" for s in report.skipped)
        typer.echo(f"{file}: {report.added} added, {report.changed} changed, "
                   f"{report.unchanged} unchanged{skipped}")


@calendar_app.command("check")
def check(
    today: Optional[str] = typer.Option(  # noqa: UP007
        None, "--today", help="The date to check up to, YYYY-MM-DD (default: today's date)."),
    product: Optional[str] = typer.Option(  # noqa: UP007
        None, "--product", "-p", help="Only this product."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or jsonl."),
) -> None:
    """List the months up to today whose calendar rows are missing, unknown or unconfirmed."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.report import render

    cal = _calendar(fmt, product)
    try:
        day = dt.date.fromisoformat(today) if today else dt.date.today()
    except ValueError:
        raise UsageError(f"--today must be a date YYYY-MM-DD, not {today!r}") from None
    found = cal.check(day, [product] if product else None)
    rows = [{"product": c.product, "month": c.month, "state": c.state.value,
             "kind": c.release.kind.value, "kb": c.release.kb, "source": c.release.source,
             "note": c.release.note} for c in found]
    render(rows, fmt, title=f"Calendar months not confirmed up to {day.isoformat()}")
    counts = Counter(c.state.value for c in found)
    last = "; ".join(f"{p} {cal.last_confirmed_month(p) or 'none'}"
                     for p in ([product] if product else cal.products))
    states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    typer.echo(f"{len(found)} month(s) not confirmed ({states}); last confirmed: {last}",
               err=True)


@calendar_app.command("classify")
def classify_cmd(
    values: List[str] = typer.Argument(
        ..., help="KB numbers or OS builds (26100.3107, 10.0.26200.7392)."),
    product: Optional[str] = typer.Option(  # noqa: UP007
        None, "--product", "-p", help="Restrict to one product."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or jsonl."),
) -> None:
    """Classify KBs / builds: baseline, hotpatch, out-of-band, standard (or the nearest release)."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.report import render

    cal = _calendar(fmt)
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
