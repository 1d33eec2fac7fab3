"""Flatten result dataclasses into rows of plain values, the form every renderer reads."""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any, Iterable

from hpforensics.textsafe import clean

# Columns that hold addresses read better in hex in every format.
HEX_FIELDS = frozenset(
    {"address", "rva", "module_base", "branch_target", "patch_base", "function_rva", "base",
     "checksum", "timestamp_hex", "offset", "region_base"}
)


def plain(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):  # a path or a name from evidence: any bytes (textsafe.py)
        return clean(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and name in HEX_FIELDS:
        return f"{value:#x}"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {clean(str(k)): plain(str(k), v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [plain(name, v) for v in value]
    return value


def to_row(record: Any) -> dict[str, Any]:
    """A dataclass (or mapping) as an ordered dict of plain values."""
    items: Iterable[tuple[str, Any]]
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        items = ((f.name, getattr(record, f.name)) for f in dataclasses.fields(record))
    elif isinstance(record, dict):
        items = record.items()
    else:
        raise TypeError(f"cannot render {type(record).__name__}")
    return {name: plain(name, value) for name, value in items}
