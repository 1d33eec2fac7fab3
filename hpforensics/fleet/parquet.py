"""Parquet partitions written by the workers: `<root>/<table>/device=<name>/part-<id>.parquet`.

One file per device and table, written where the device was processed, so the driver never
sees the rows. Column types are fixed per table (from the record dataclasses' annotations, or
declared here) rather than inferred, so every partition has the same schema and the dataset
reads back as one table (`pyarrow.dataset.dataset(root / table, partitioning="hive")`).
Partition values are URI-encoded, as pyarrow's hive partitioning decodes them.
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import quote

log = logging.getLogger(__name__)

# Declared type names -> arrow types (resolved lazily: pyarrow loads only in fleet runs).
STRING, INT, FLOAT, BOOL = "string", "int64", "float64", "bool"
TIMESTAMP, DATE = "timestamp", "date"


def dataclass_types(cls: type, columns: Iterable[str]) -> dict[str, str]:
    """Column -> type name from a dataclass's annotations (`int | None` -> int64, ...)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for name in columns:
        args = set(typing.get_args(hints.get(name))) - {type(None)} or {hints.get(name)}
        kind = next(iter(args)) if len(args) == 1 else str
        out[name] = {int: INT, float: FLOAT, bool: BOOL, dt.datetime: TIMESTAMP,
                     dt.date: DATE}.get(kind, STRING)
    return out


def _arrow(kind: str):
    # lazy: optional [fleet] extra
    import pyarrow as pa

    return {STRING: pa.string(), INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_(),
            TIMESTAMP: pa.timestamp("us", tz="UTC"), DATE: pa.date32()}[kind]


def _coerce(kind: str, value: Any) -> Any:
    if value is None or (value == "" and kind != STRING):
        return None
    if kind == STRING:
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        return value if isinstance(value, str) else str(value)
    if kind == TIMESTAMP and isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if kind == DATE and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if kind == INT:
        return int(value)
    if kind == FLOAT:
        return float(value)
    return value


def schema(types: Mapping[str, str]):
    # lazy: optional [fleet] extra
    import pyarrow as pa

    return pa.schema([(name, _arrow(kind)) for name, kind in types.items()])


def partition_dir(root: Path, table: str, device: str) -> Path:
    return root / table / f"device={quote(device, safe='')}"


def _column(kind: str, values: list[Any]):
    """An arrow array of the values: pyarrow converts native values itself; anything it will
    not take (an ISO string for a timestamp, '' for a number, an enum) goes through _coerce."""
    # lazy: optional [fleet] extra
    import pyarrow as pa

    try:
        return pa.array(values, type=_arrow(kind))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return pa.array([_coerce(kind, v) for v in values], type=_arrow(kind))


def write_partition(root: Path, table: str, device: str, types: Mapping[str, str],
                    columns: Mapping[str, list[Any]], part: str) -> Path | None:
    """One device's rows, given column-wise, as one Parquet file."""
    # lazy: optional [fleet] extra
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the device is the partition key: pyarrow adds it back from the path when reading
    names = [n for n in types if n != "device"]
    if not names or not len(columns[names[0]]):
        return None
    target = partition_dir(root, table, device)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"part-{part}.parquet"
    arrays = [_column(types[n], columns[n]) for n in names]
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema({n: types[n] for n in names})), path)
    return path


def rows_to_columns(names: Iterable[str], rows: Iterable[Any]) -> dict[str, list[Any]]:
    """Records (objects with attributes, or dicts) as columns."""
    names = list(names)
    rows = list(rows)
    if rows and isinstance(rows[0], Mapping):
        return {n: [r.get(n) for r in rows] for n in names}
    return {n: [getattr(r, n) for r in rows] for n in names}
