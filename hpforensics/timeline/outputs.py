"""Incremental writers: each output goes to NAME.csv and NAME.jsonl row by row.

CSV cells go through `csvsafe.safe_cell` (no formula starts, no raw newlines), so the
files open safely in Excel and Timeline Explorer; JSONL keeps the plain values. Rows can be
rendered to text where they are produced (a worker process) and written here as text.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Sequence

import orjson

from hpforensics import _rowfmt
from hpforensics.csvsafe import safe_cell
from hpforensics.cells import plain

_RISKY = frozenset("=+-@\t\r")


def _plain(name: str, value: Any) -> Any:
    if value is None or type(value) is str or type(value) is int:
        return value
    return plain(name, value)


def _cell(value: Any) -> Any:
    # Most cells are plain str / int / None: skip the general converter for those (this runs
    # once per cell of every event).
    if type(value) is str:
        if value and (value[0] in _RISKY or "\n" in value or "\r" in value):
            return safe_cell(value)
        return value
    if type(value) is int:
        return value
    return safe_cell(value)


def safe_cells(values: Iterable[Any]) -> list[Any]:
    """Plain values as CSV-safe cells."""
    return [_cell(v) for v in values]


def safe_cells_at(values: list[Any], text: Sequence[int]) -> list[Any]:
    """Like safe_cells, for rows whose other cells are known to be safe (numbers, our own
    vocabulary): only the `text` positions are checked."""
    cells = list(values)
    for i in text:
        v = cells[i]
        if v is not None and (type(v) is not str or (v and (
                v[0] in _RISKY or "\n" in v or "\r" in v))):
            cells[i] = safe_cell(v)
    return cells


def json_line(columns: Sequence[str], values: Sequence[Any]) -> str:
    return orjson.dumps(dict(zip(columns, values)), default=str,
                        option=orjson.OPT_APPEND_NEWLINE).decode()


def _quoted(text: str) -> str:
    # csv.writer's QUOTE_MINIMAL with "\n" line ends: a comma, a quote or a newline
    if '"' in text or "," in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _guarded_cell(value: Any) -> str:
    """One cell as safe_cells_at() then csv.writer would write it."""
    if type(value) is str:
        if value and (value[0] in _RISKY or "\n" in value or "\r" in value):
            value = safe_cell(value)
        return _quoted(value)
    if type(value) is int:  # safe_cell's str(); digits and a sign never need quotes
        return str(value)
    return "" if value is None else _quoted(safe_cell(value))


def _plain_cell(value: Any) -> str:
    """One cell as csv.writer would write it (no formula guard)."""
    if type(value) is str:
        if '"' in value or "," in value or "\n" in value:
            return _quoted(value)
        return value
    if type(value) is int:
        return str(value)
    if value is None:
        return ""
    return _quoted(repr(value) if type(value) is float else str(value))


class CsvRows:
    """Rows of plain values -> CSV lines: the very text of
    render_csv(safe_cells_at(list(row), text) for row in rows). `text`: the positions guarded
    against formulas.

    `lines(rows)` / `text(rows)` run in C (`hpforensics._rowfmt`, ~10x faster) for rows of
    str, int and None whose guarded cells the guard leaves alone; every other row is written by
    `line`, the Python renderer, which defines the text (`py_lines` is it for many rows)."""

    def __init__(self, width: int, text: Iterable[int]) -> None:
        text = set(text)
        self._cells = [_guarded_cell if i in text else _plain_cell for i in range(width)]
        # The row unrolled into one f-string (generated, as dataclasses and namedtuple make
        # their methods): no per-cell loop and join, ~25 % faster on 16-20 columns.
        names = {f"c{i}": cell for i, cell in enumerate(self._cells)}
        body = ",".join(f"{{c{i}(r[{i}])}}" for i in range(width))
        self.line = _generated("line", "r", f'f"{body}\\n"', names)
        self.py_lines = _generated("lines", "rows", f'[f"{body}\\n" for r in rows]', names)
        self.fmt = _rowfmt.CsvFormat(width, sorted(text), self.line)
        self.lines, self.text = self.fmt.lines, self.fmt.text


def _generated(name: str, param: str, expression: str, names: dict[str, Any]) -> Any:
    """A function `name(param)` returning `expression`, with `names` in scope."""
    scope = dict(names)
    exec(f"def {name}({param}):\n    return {expression}\n", scope)  # noqa: S102 - our text
    return scope[name]


class JsonRows:
    """Rows of plain values -> JSON lines, the text of json_line(columns, row) for each row.

    `lines(rows)` / `text(rows)` run in C (`hpforensics._rowfmt`) for rows of str, int, bool
    and None (what orjson writes for those, byte for byte); every other row is written by
    `line`, the Python renderer: a generated dict literal (about twice as fast to build as
    dict(zip(...))) dumped by orjson and decoded at once: keeping orjson's bytes objects alive
    in a list until one join costs ~10x more (each is allocated large and shrunk in place, so
    malloc hands out fresh memory for every line instead of reusing the last one)."""

    def __init__(self, columns: Sequence[str]) -> None:
        body = ", ".join(f"{c!r}: r[{i}]" for i, c in enumerate(columns))
        line = f"dumps({{{body}}}, default=str, option=opt).decode()"
        scope = {"dumps": orjson.dumps, "opt": orjson.OPT_APPEND_NEWLINE}
        self.line = _generated("line", "r", line, scope)
        self.py_lines = _generated("lines", "rows", f"[{line} for r in rows]", scope)
        if not all(isinstance(c, str) for c in columns):
            raise TypeError("JSON columns must be str")
        # As in the dict literal, a repeated column keeps its first place and its last value.
        last = {c: i for i, c in enumerate(columns)}
        self.fmt = _rowfmt.JsonFormat(len(columns),
                                      [(orjson.dumps(c), i) for c, i in last.items()], self.line)
        self.lines, self.text = self.fmt.lines, self.fmt.text


def plain_values(columns: Sequence[str], row: dict[str, Any]) -> list[Any]:
    return [_plain(c, row.get(c)) for c in columns]


def render_csv(rows: Iterable[list[Any]]) -> str:
    """Many rows of cells as CSV text, in one call into the csv module."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


class CsvLines:
    """One row of cells as one CSV line (cells are newline-free after safe_cells)."""

    def __init__(self) -> None:
        self._buf = io.StringIO()
        self._writer = csv.writer(self._buf, lineterminator="\n")

    def __call__(self, cells: list[Any]) -> str:
        self._buf.seek(0)
        self._buf.truncate()
        self._writer.writerow(cells)
        return self._buf.getvalue()


class RowSink:
    """Write rows (dicts) to `<dir>/<name>.csv` and `<dir>/<name>.jsonl`."""

    def __init__(self, outdir: Path, name: str, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.count = 0
        outdir.mkdir(parents=True, exist_ok=True)
        self.csv_path = outdir / f"{name}.csv"
        self.jsonl_path = outdir / f"{name}.jsonl"
        self._csv_fh = open(self.csv_path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        # newline="": "\n" on every OS, as the bytes block-copied or merged beneath it are
        self._jsonl_fh = open(self.jsonl_path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._csv_fh, lineterminator="\n")
        self._writer.writerow(self.columns)

    def write(self, row: dict[str, Any]) -> None:
        values = plain_values(self.columns, row)
        self._writer.writerow(safe_cells(values))
        self._jsonl_fh.write(json_line(self.columns, values))
        self.count += 1

    def write_rendered(self, render: Callable[[Callable[[bytes], Any], Callable[[bytes], Any]],
                                              int]) -> None:
        """Rows rendered elsewhere as UTF-8 bytes with the same columns: `render(csv_write,
        json_write)` hands them to the files' binary layer and returns how many rows it wrote
        (rows.write_timeline)."""
        self._csv_fh.flush()  # the header, before bytes go to the files beneath
        self._jsonl_fh.flush()
        self.count += render(self._csv_fh.buffer.write, self._jsonl_fh.buffer.write)

    def write_text(self, csv_text: str, jsonl_text: str, rows: int) -> None:
        """Rows already rendered (render_csv / json_line) with the same columns."""
        self._csv_fh.write(csv_text)
        self._jsonl_fh.write(jsonl_text)
        self.count += rows

    def append_range(self, piece: Path, offset: int, csv_size: int, jsonl_size: int,
                     rows: int) -> None:
        """Rows rendered into a file by a worker process (CSV text at `offset`, then the
        JSONL text): block-copied."""
        with open(piece, "rb") as src:
            for size, fh in ((csv_size, self._csv_fh), (jsonl_size, self._jsonl_fh)):
                fh.flush()
                offset = _copy_range(src, fh.buffer, offset, size)
        self.count += rows

    def close(self) -> None:
        self._csv_fh.close()
        self._jsonl_fh.close()

    def __enter__(self) -> "RowSink":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _copy_range(src: Any, dst: Any, offset: int, size: int) -> int:
    """Append `size` bytes of `src` from `offset` to `dst` (flushed); the end offset. In the
    kernel where it can (copy_file_range), else read and write."""
    end = offset + size
    if hasattr(os, "copy_file_range"):
        try:
            while offset < end:
                done = os.copy_file_range(src.fileno(), dst.fileno(), end - offset, offset)
                if done == 0:
                    break
                offset += done
        except OSError:  # not between these files here: copy the rest by hand
            pass
        dst.seek(0, os.SEEK_END)  # the buffered writer's position, after the kernel's writes
    src.seek(offset)
    while offset < end:
        block = src.read(min(end - offset, 1 << 20))
        if not block:
            raise OSError(f"{src.name}: ends {end - offset} bytes early")
        dst.write(block)
        offset += len(block)
    return end


FLUSH_BYTES = 4 << 20  # rendered lines are handed to a file's binary layer in blocks this size
