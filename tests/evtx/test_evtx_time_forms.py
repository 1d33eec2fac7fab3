"""parse_time's whole-second fast path gives what the general path gives."""
from __future__ import annotations

import datetime as dt

import pytest

from hpforensics.evtx.records import parse_time


@pytest.mark.parametrize("text, want", [
    ("2025-02-01T07:18:00Z UTC", dt.datetime(2025, 2, 1, 7, 18, tzinfo=dt.timezone.utc)),
    ("2025-02-01T07:18:00Z", dt.datetime(2025, 2, 1, 7, 18, tzinfo=dt.timezone.utc)),
    ("2025-02-31T07:18:00Z UTC", None),  # no such day: neither path parses it
    ("2025-02-01T25:18:00Z", None),
    ("2025-02-01T07:18 00Z", None),
    ("2025-02-01 07:18:00Z UTC", dt.datetime(2025, 2, 1, 7, 18, tzinfo=dt.timezone.utc)),
])
def test_whole_second_stamps(text: str, want: dt.datetime | None) -> None:
    got = parse_time(text)
    assert got == want
    if got is not None:
        assert got.tzinfo is dt.timezone.utc  # the singleton, as every other form gives
