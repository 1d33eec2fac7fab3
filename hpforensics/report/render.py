"""One entry point for every output format: render(records, fmt, out)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any, Iterable, Sequence

from hpforensics.csvsafe import write_csv
from hpforensics.cells import to_row

FORMATS = ("table", "json", "jsonl", "csv")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _table(out: IO[str], title: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    # lazy: rich only where a terminal is drawn on
    from rich.console import Console
    from rich.table import Table

    # the schema pulls in the result records of every source: only when a table is drawn
    from hpforensics.report.schema import title as heading

    table = Table(title=title or None, show_lines=False)
    for c in columns:
        table.add_column(heading(c), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(file=out, width=None if out.isatty() else 200).print(table)


def render(
    records: Iterable[Any],
    fmt: str = "table",
    out: IO[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
    title: str = "",
) -> None:
    """Write records in one format. `columns` narrows and orders the table/CSV columns."""
    out = out or sys.stdout
    rows = [to_row(r) for r in records]
    cols = list(columns) if columns else (list(rows[0]) if rows else [])
    if fmt == "json":
        json.dump(rows, out, indent=2, sort_keys=False, default=str)
        out.write("\n")
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, sort_keys=False, default=str) + "\n")
    elif fmt == "csv":
        write_csv(out, cols, rows)
    elif fmt == "table":
        _table(out, title, cols, rows)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def render_to(path: Path | None, records: Iterable[Any], fmt: str, **kw: Any) -> None:
    """Render to a file (created, UTF-8, newline-normalised) or to stdout when path is None."""
    if path is None:
        render(records, fmt, sys.stdout, **kw)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        render(records, fmt, fh, **kw)
