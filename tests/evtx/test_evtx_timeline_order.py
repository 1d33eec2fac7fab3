"""The timeline written at the end of a run, in C (`rows.timeline_order`, then
`rows.write_timeline`), against the definitions in rows.py (`timeline_order_py`,
`write_timeline_py`) and an independent stable sort: the same lines in the same order on the
real logs' and the sample fleet's events, on events built to tie, and the errors of lines that
are not text, items of another shape and writers that fail."""
from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path

import pytest

from hpforensics.evtx.ingest import discover
from hpforensics.timeline import rows as R
from hpforensics.timeline.normalise import Event
from hpforensics.timeline.outputs import RowSink
from hpforensics.timeline.reading import read_item

FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"
_UTC = dt.timezone.utc


def _read(source: Path) -> list[Event]:
    """The events of every input under source, in the order a run reads them."""
    return [ev for item in discover([source]) for ev in read_item(item, hash_inputs=False).events]


def _written(write, items, flush: int = 1 << 22) -> tuple[bytes, bytes, int, int]:
    csv_parts: list[bytes] = []
    json_parts: list[bytes] = []
    n = write(items, csv_parts.append, json_parts.append, flush)
    return b"".join(csv_parts), b"".join(json_parts), n, len(csv_parts)


def _order_py(events, derived) -> list:
    """The definition of timeline_order: a stable sort by key of the events, then the derived
    rows."""
    keyed = [(R.timeline_key_py(ev), ev) for ev in events] + list(derived)
    return [item for _, item in sorted(keyed, key=lambda pair: pair[0])]


def _derived(events, every: int) -> list:
    """Derived rows as the pipeline makes them, at the times and devices of some events: their
    record ID is "", so they sort before those events."""
    return [((R.timeline_key_py(ev)[0], ev.device, ""), (f"derived {k},\n", f'{{"d":{k}}}\n'))
            for k, ev in enumerate(events[::every])]


@pytest.mark.parametrize("where", ["fleet", "real"])
def test_the_timeline_of_real_events_is_the_reference_s(where, shared_data) -> None:
    events = _read(FLEET if where == "fleet" else shared_data / "evtx")
    assert len(events) > 400
    derived = _derived(events, 37)
    items = R.timeline_order(events, derived)
    assert [id(i) for i in items] == [id(i) for i in _order_py(events, derived)]
    assert [id(i) for i in items] == [id(i) for i in R.timeline_order_py(events, derived)]
    assert R._LINES.order(events, [k for k, _ in derived]) is not None  # sorted in C
    csv, json, n, parts = _written(R.write_timeline, items, flush=65536)
    assert (csv, json, n, 1) == _written(R.write_timeline_py, items)
    assert n == len(events) + len(derived)
    assert parts >= max(1, len(json) // (2 * 65536))  # handed on in blocks, not at once
    assert csv.count(b"\n") >= n and b"derived 0," in csv


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # the same error, raised the same way, is the same outcome
        return type(exc), str(exc)


def _tying_events(rnd: random.Random, n: int) -> list[Event]:
    """Times, devices and record IDs drawn from a few values, so that many keys tie; text of
    every width (UTF-8 of 1-4 bytes); record IDs that sort as text, not as numbers."""
    text = ["a", "é", "€", "\U0001f600", ",", '"', "\n"]
    times = [None, dt.datetime(2025, 1, 1, tzinfo=_UTC), dt.datetime(2025, 1, 1, 0, 0, 1,
                                                                    tzinfo=_UTC)]
    return [Event(rnd.choice(["A", "B", "b", "é"]), rnd.choice(times), "System", "P", 1,
                  rnd.choice([9, 10, 100, 2]), f"src{k}", "boot",
                  detail="".join(rnd.choice(text) for _ in range(rnd.randint(0, 6))))
            for k in range(n)]


@pytest.mark.parametrize("seed", range(20))
def test_events_that_tie_keep_the_order_read(seed: int) -> None:
    rnd = random.Random(seed)
    events = _tying_events(rnd, rnd.randint(0, 120))
    derived = _derived(events, rnd.randint(1, 9)) if events else []
    items = R.timeline_order(events, derived)
    want = _order_py(events, derived)
    assert [id(i) for i in items] == [id(i) for i in want]
    assert [id(i) for i in items] == [id(i) for i in R.timeline_order_py(events, derived)]
    flush = rnd.randint(1, 200)
    assert _written(R.write_timeline, items, flush)[:3] == _written(R.write_timeline_py, items)[:3]


def test_the_order_compares_what_the_keys_hold() -> None:
    """Record IDs as text ("10" before "9"), devices as str (upper case before lower, code
    points beyond Latin-1), times as their text (None first, then years 1 to 9999, to the
    microsecond), a derived row before the events at its time and device."""
    t = [dt.datetime(1, 1, 1, tzinfo=_UTC), dt.datetime(1969, 12, 31, 23, 59, 59, 999999,
                                                         tzinfo=_UTC),
         dt.datetime(1970, 1, 1, tzinfo=_UTC), dt.datetime(2025, 3, 1, 0, 0, 0, 1, tzinfo=_UTC),
         dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=_UTC)]
    events = [Event(d, when, "c", "p", 1, rid, "s", "boot") for when in [t[3], None, *t[::-1]]
              for d in ("b", "B", "\u65e5", "a") for rid in (9, 10, -1, 2**63 - 1)]
    derived = [(("2025-03-01T00:00:00.000001Z", "b", ""), ("d1\n", "{}\n")),
               (("2024-02-29T23:59:59.999999Z", "b", ""), ("d4\n", "{}\n")),
               (("", "a", ""), ("d2\n", "{}\n")),
               (("0001-01-01T00:00:00.000000Z", "z", ""), ("d3\n", "{}\n"))]
    items = R.timeline_order(events, derived)
    assert [id(i) for i in items] == [id(i) for i in _order_py(events, derived)]
    first_a = next(k for k, i in enumerate(items) if isinstance(i, Event) and i.device == "a")
    assert items[0].device == "B" and items[first_a - 1] == ("d2\n", "{}\n")
    assert R._LINES.order(events, [k for k, _ in derived]) is not None


@pytest.mark.parametrize("key", [
    ("2025-03-01 00:00:00.000001Z", "b", ""),  # not rows.iso's form
    ("2025-13-01T00:00:00.000001Z", "b", ""),
    ("2025-02-29T00:00:00.000001Z", "b", ""),  # no such day: its time would not sort as text
    ("2025-04-31T00:00:00.000001Z", "b", ""),
    ("2025-03-01T00:00:00.000001", "b", ""),
    ("2025-03-01T00:00:00.000001Z", 5, ""),
    ("2025-03-01T00:00:00.000001Z", "b", "\u65e5"),
    ("2025-03-01T00:00:00.000001Z", "b"),
])
def test_keys_the_c_side_does_not_take_are_sorted_by_the_definition(key) -> None:
    events = _tying_events(random.Random(1), 30)
    derived = [(key, ("x\n", "{}\n"))]
    assert R._LINES.order(events, [key]) is None
    got = _outcome(lambda: [id(i) for i in R.timeline_order(events, derived)])
    assert got == _outcome(lambda: [id(i) for i in R.timeline_order_py(events, derived)])


def test_write_rendered_writes_the_lines_after_the_header(tmp_path: Path) -> None:
    events = _tying_events(random.Random(5), 200)
    items = R.timeline_order(events, [])
    csv, json, _, _ = _written(R.write_timeline_py, items)
    with RowSink(tmp_path, "t", ["a", "b"]) as out:
        out.write_rendered(lambda c, j: R.write_timeline(items, c, j, 64))
    assert out.count == 200
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\n" + csv
    assert (tmp_path / "t.jsonl").read_bytes() == json


def _sink() -> list[bytes]:
    return []


def _write(items, flush: int = 1 << 20) -> int:
    return R.write_timeline(items, _sink().append, _sink().append, flush)


def _both(items) -> tuple:
    c = _outcome(lambda: _written(R.write_timeline, items)[:3])
    assert c == _outcome(lambda: _written(R.write_timeline_py, items)[:3])
    return c


@pytest.mark.parametrize("where", ["device", "detail", "source"])
def test_a_line_that_is_not_text_fails_as_the_reference_does(where: str) -> None:
    ev = Event("d", None, "c", "p", 1, 2, "s", "boot")
    setattr(ev, where, "x\ud800y")
    ok = Event("d", None, "c", "p", 1, 3, "s", "boot")
    got = _both([ok, ev])
    assert got[0] is TypeError and "surrogates" in got[1]  # the JSON line refuses it
    with pytest.raises(UnicodeEncodeError):  # a derived row's line, as a text file would
        _write([ok, ("csv \udfff\n", "{}\n")])
    with pytest.raises(UnicodeEncodeError):
        R.write_timeline_py([ok, ("csv \udfff\n", "{}\n")], _sink().append, _sink().append)


@pytest.mark.parametrize("bad, error", [
    (("only a csv line",), TypeError),  # one line
    (("csv\n", "{}\n", "more\n"), TypeError),  # three
    ((b"csv\n", "{}\n"), TypeError),  # bytes for a line
    (["csv\n", "{}\n"], AttributeError),  # a list is no event (the reference reads its time)
    ("text", AttributeError),
])
def test_items_of_another_shape_fail_as_the_reference_does(bad, error) -> None:
    assert _both([bad])[0] is error


def test_events_the_c_side_does_not_take_go_to_the_reference() -> None:
    class Sub(Event):
        __slots__ = ()

    plus2 = dt.timezone(dt.timedelta(hours=2))
    odd = [Event("d", dt.datetime(2025, 2, 1, 12, tzinfo=plus2), "c", "p", 1, 2, "s", "boot"),
           Sub("d", None, "c", "p", 1, 2, "s", "boot"),
           Event("d", None, "c", "p", 1, "12", "s", "boot"),  # type: ignore[arg-type]
           Event("d", None, "c", "p", 1, 2, "s", "boot", release_month=None,
                 update_class="hotpatch")]
    assert R.timeline_key_py(odd[0])[0] == "2025-02-01T10:00:00.000000Z"
    for ev in odd[:3]:  # another zone, another type, a record ID of text
        assert R._LINES.order([ev], []) is None  # the definition sorts those
        assert R.timeline_order([ev], []) == [ev]
    big = Event("d", None, "c", "p", 1, 2**64, "s", "boot")
    assert R._LINES.order([big], []) is None
    assert [id(i) for i in R.timeline_order(odd + [big], [])] == \
        [id(i) for i in _order_py(odd + [big], [])]
    assert _written(R.write_timeline, odd)[:3] == _written(R.write_timeline_py, odd)[:3]
    with pytest.raises(AttributeError):
        _write([Event.__new__(Event)])


def test_errors_of_writers_and_flush_reach_the_caller() -> None:
    ev = Event("d", None, "c", "p", 1, 2, "s", "boot")

    def full(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        R.write_timeline([ev], full, full, 1)
    with pytest.raises(ValueError):
        R.write_timeline([ev], full, full, 0)
    assert R.write_timeline([], full, full, 1) == 0  # nothing to hand on: the writer unused


def test_no_reference_is_lost_or_kept() -> None:
    events = _tying_events(random.Random(3), 100)
    derived = _derived(events, 7)
    bad = Event("d", None, "c", "p", 1, 2, "s\udfff", "boot")
    before = [sys.getrefcount(e) for e in events] + [sys.getrefcount(d[1]) for d in derived]
    for _ in range(50):
        items = R.timeline_order(events, derived)
        _write(items, 64)
        with pytest.raises(TypeError):  # its JSON line refuses the surrogate
            _write(items + [bad], 64)
        with pytest.raises(UnicodeEncodeError):
            _write(items + [("\udfff", "{}\n")], 64)
        R._LINES.order(events, [k for k, _ in derived])
    del items
    after = [sys.getrefcount(e) for e in events] + [sys.getrefcount(d[1]) for d in derived]
    assert after == before
