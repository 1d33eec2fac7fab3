"""CSV cells that open cleanly in Excel and Timeline Explorer.

A cell starting with = + - @ (or tab / CR) would be read as a formula: prefix it with a quote.
Raw newlines break line-oriented tools: they become the two characters \\n.
"""
from __future__ import annotations

import csv
import json
from typing import IO, Any, Iterable, Sequence

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)  # negative numbers are data, not formulas
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        value = ";".join(map(str, value))
    elif isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = str(value).replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text


def write_csv(out: IO[str], columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow([safe_cell(row.get(c)) for c in columns])
        n += 1
    return n
