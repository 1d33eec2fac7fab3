"""Parquet partitions written by the workers: `<root>/<table>/device=<name>/part-<id>.parquet`.

One file per device and table, written where the device was processed, so the driver never
sees the rows. Column types are fixed per table (from the record dataclasses' annotations, or
declared here) rather than inferred, so every partition has the same schema and the dataset
reads back as one table (`pyarrow.dataset.dataset(root / table, partitioning="hive")`).
Partition values are URI-encoded, as pyarrow's hive partitioning decodes them.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import quote

log = logging.getLogger(__name__)

# Declared type names -> arrow types (resolved lazily: pyarrow loads only in fleet runs).
STRING, INT, FLOAT, BOOL, TIMESTAMP, DATE = "string", "int64", "float64", "bool", "timestamp", "date"


def dataclass_types(cls: type, columns: Iterable[str]) -> dict[str, str]:
    """Column -> type name from a dataclass's annotations (`int | None` -> int64, ...)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for name in columns:
        args = set(typing.get_args(hints.get(name))) - {type(None)} or {hints.get(name)}
        kind = next(iter(args)) if len(args) == 1 else str
        out[name] = {int: INT, float: FLOAT, bool: BOOL, dt.datetime: TIMESTAMP,
                     dt.date: DATE}.get(kind, STRING)  # type: ignore[call-overload]
    return out


def _arrow(kind: str):
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
    import pyarrow as pa

    return pa.schema([(name, _arrow(kind)) for name, kind in types.items()])


def partition_dir(root: Path, table: str, device: str) -> Path:
    return root / table / f"device={quote(device, safe='')}"


def write_partition(root: Path, table: str, device: str, types: Mapping[str, str],
                    rows: Iterable[Mapping[str, Any] | list[Any]], part: str) -> Path | None:
    """Rows (dicts, or value lists in `types` order) of one device as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the device is the partition key: pyarrow adds it back from the path when reading
    names = [n for n in types if n != "device"]
    columns: list[list[Any]] = [[] for _ in names]
    kinds = [types[n] for n in names]
    count = 0
    for row in rows:
        values = ([v for n, v in zip(types, row) if n != "device"] if isinstance(row, list)
                  else [row.get(n) for n in names])
        for col, kind, value in zip(columns, kinds, values):
            col.append(_coerce(kind, value))
        count += 1
    if not count:
        return None
    target = partition_dir(root, table, device)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"part-{part}.parquet"
    table_ = pa.Table.from_arrays([pa.array(c, type=_arrow(k)) for c, k in zip(columns, kinds)],
                                  schema=schema({n: types[n] for n in names}))
    pq.write_table(table_, path)
    return path
