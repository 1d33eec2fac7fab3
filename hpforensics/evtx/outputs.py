"""Incremental writers: each output goes to NAME.csv and NAME.jsonl row by row.

CSV cells go through `report.csvsafe.safe_cell` (no formula starts, no raw newlines), so the
files open safely in Excel and Timeline Explorer; JSONL keeps the plain values.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

from hpforensics.report.csvsafe import safe_cell
from hpforensics.report.rows import plain


_RISKY = frozenset("=+-@\t\r")


def _plain(name: str, value: Any) -> Any:
    if value is None or type(value) is str or type(value) is int:
        return value
    return plain(name, value)


def _cell(value: Any) -> Any:
    if type(value) is str:
        if value and (value[0] in _RISKY or "\n" in value or "\r" in value):
            return safe_cell(value)
        return value
    if type(value) is int:
        return value
    return safe_cell(value)


class RowSink:
    """Write rows (dicts or dataclasses) to `<dir>/<name>.csv` and `<dir>/<name>.jsonl`."""

    def __init__(self, outdir: Path, name: str, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.count = 0
        outdir.mkdir(parents=True, exist_ok=True)
        self.csv_path = outdir / f"{name}.csv"
        self.jsonl_path = outdir / f"{name}.jsonl"
        self._csv_fh = open(self.csv_path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._jsonl_fh = open(self.jsonl_path, "w", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._csv_fh, lineterminator="\n")
        self._writer.writerow(self.columns)

    def write(self, row: dict[str, Any]) -> None:
        # Most cells are plain str / int / None: skip the general converters for those
        # (this loop runs once per cell of every event).
        values = {c: _plain(c, row.get(c)) for c in self.columns}
        self._writer.writerow([_cell(v) for v in values.values()])
        self._jsonl_fh.write(json.dumps(values, default=str) + "\n")
        self.count += 1

    def close(self) -> None:
        self._csv_fh.close()
        self._jsonl_fh.close()

    def __enter__(self) -> "RowSink":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
