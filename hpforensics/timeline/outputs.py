"""Incremental writers: each output goes to NAME.csv and NAME.jsonl row by row.

CSV cells go through `csvsafe.safe_cell` (no formula starts, no raw newlines), so the
files open safely in Excel and Timeline Explorer; JSONL keeps the plain values. Rows can be
rendered to text where they are produced (a worker process) and written here as text.
"""
from __future__ import annotations

import csv
import heapq
import io
import itertools
import marshal
import operator
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Iterator, Sequence

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

    def write_merged(self, sorter: "SpillSorter", csv_at: int = 1, json_at: int = 2) -> None:
        """The sorter's rows in order, (key, ...) rows holding a rendered CSV line at `csv_at`
        and a JSON line at `json_at`: merged and copied in one C call (`_rowfmt.merge_write`,
        which orders them as iterating the sorter does), written as UTF-8 bytes."""
        self._csv_fh.flush()  # the header, before bytes go to the files beneath
        self._jsonl_fh.flush()
        self.count += _rowfmt.merge_write(sorter.sources(), self._csv_fh.buffer.write,
                                  self._jsonl_fh.buffer.write, csv_at, json_at, _FLUSH_BYTES)

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


class SpillSorter:
    """Sort rows by key with bounded memory: runs (sorted rows in temporary files, written
    here when `limit` rows pile up, or by worker processes) are merged while the output is
    written (RowSink.write_merged in C; iterating the sorter is its heapq reference). Rows of
    different sources (one extend() call, one run) must not share a key: the merge compares
    whole rows."""

    MAX_OPEN = 200  # runs merged at once; more are first merged into intermediate runs

    def __init__(self, work_dir: Path, limit: int = 100_000) -> None:
        self.work_dir = work_dir
        self.limit = limit
        self._rows: list[tuple[Any, ...]] = []
        self._runs: list[Path] = []

    def extend(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._rows.extend(rows)
        if len(self._rows) >= self.limit:
            self._runs.append(write_run(self.work_dir, self._rows))
            self._rows = []

    def add_run(self, path: Path) -> None:
        self._runs.append(path)

    def sources(self) -> list[Iterable[tuple[Any, ...]]]:
        """The sorted sources to merge: the rows held here, then the runs (at most MAX_OPEN + 1
        in all; more runs are first merged into intermediate ones)."""
        while len(self._runs) > self.MAX_OPEN:
            group, self._runs = self._runs[:self.MAX_OPEN], self._runs[self.MAX_OPEN:]
            merged = heapq.merge(*map(_read_run, group))
            self._runs.append(write_run(self.work_dir, merged, presorted=True))
            for p in group:
                p.unlink(missing_ok=True)
        self._rows.sort(key=_first)
        return [self._rows, *map(_read_run, self._runs)]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        """The rows in order: the reference for RowSink.write_merged's merge in C.
        Merged on the whole rows, not through a key function (a Python call per row): two
        sources never hold rows with the same key (the pipeline's keys end with the input's
        index, and one input's rows are in one source), so the rows compare as their keys do,
        and merge never reorders the rows of one source."""
        first, *runs = self.sources()
        if not runs:  # nothing spilled: the sorted rows are the order (no heap per row)
            return iter(first)
        return heapq.merge(iter(first), *runs)


def write_run(work_dir: Path, rows: Iterable[tuple[Any, ...]], presorted: bool = False) -> Path:
    """Rows sorted by their first item, in a new file of work_dir: marshalled batches of
    _BATCH rows (a run is read back a batch at a time, so an open run holds one batch)."""
    if not presorted:
        rows = sorted(rows, key=_first)
    work_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=".run", dir=work_dir)
    with open(fd, "wb") as fh:
        if isinstance(rows, list):
            batches: Iterable[list] = (rows[i:i + _BATCH] for i in range(0, len(rows), _BATCH))
        else:
            it = iter(rows)
            batches = iter(lambda: list(itertools.islice(it, _BATCH)), [])
        for batch in batches:
            data = marshal.dumps(batch)
            fh.write(len(data).to_bytes(4, "little"))
            fh.write(data)
    return Path(name)


# A run file is batches of _BATCH rows, each a 4-byte length and the batch marshalled: these
# are this run's own temporary files of str tuples, marshal reads them back fastest (~8x
# faster than a JSON line per row) and cannot run code; an open run holds one batch.
_BATCH = 256
_FLUSH_BYTES = 4 << 20  # merge_write hands its lines on in blocks of this size
_first = operator.itemgetter(0)  # rows are (sort key tuple, ...): compare by the key only


def _read_run(path: Path) -> Iterator[tuple[Any, ...]]:
    with open(path, "rb") as fh:
        while head := fh.read(4):
            yield from marshal.loads(fh.read(int.from_bytes(head, "little")))
