"""Field values as text, the way Windows renders them in event XML (what the plan records)."""
from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any


def render(in_type: str, value: Any) -> str:
    if in_type == "GUID":
        return "{" + str(uuid.UUID(str(value))).upper() + "}"
    if in_type in ("HexInt32", "HexInt64", "Pointer"):
        return f"0x{value:x}"
    if in_type == "FILETIME":
        stamp = value.astimezone(_dt.timezone.utc)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}0Z"
    if in_type == "Boolean":
        return "true" if value else "false"
    return str(value)
