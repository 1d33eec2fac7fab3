"""The C row renderers (hpforensics._rowfmt behind CsvRows / JsonRows) write exactly what the
Python renderers write: on every event of real logs, on hostile cells, and in whole runs."""
from __future__ import annotations

import datetime as dt
import enum
import gc
import os
import platform
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from hpforensics import _rowfmt

from hpforensics.timeline import rows as R
from hpforensics.evtx.ingest import discover
from hpforensics.timeline.outputs import CsvRows, JsonRows, json_line, render_csv, safe_cells_at
from hpforensics.timeline.pipeline import TimelineOptions
from hpforensics.runs.timeline import run_timeline
from hpforensics.timeline.normalise import Event
from hpforensics.timeline.reading import read_item

FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"
RENDERERS = {"event csv": R.EVENT_CSV, "event json": R.EVENT_JSON,
             "timeline csv": R.TIMELINE_CSV, "timeline json": R.TIMELINE_JSON}


def _real_rows(*paths: Path) -> tuple[list[list], list[list]]:
    events, timeline = [], []
    for item in discover(paths):
        for ev in read_item(item, hash_inputs=False).events:
            values = R.event_values(ev)
            events.append(values)
            timeline.append(R.timeline_values(ev, values[R.TIME_INDEX]))
    return events, timeline


def _outcome(fn, rows):
    try:
        return fn(rows)
    except Exception as exc:  # the same error, raised the same way, is the same outcome
        return type(exc), str(exc)


def _same(renderer, rows) -> None:
    want = _outcome(renderer.py_lines, rows)
    assert _outcome(renderer.lines, rows) == want
    joined = want if isinstance(want, tuple) else "".join(want)
    assert _outcome(renderer.text, rows) == joined


@pytest.mark.parametrize("where", ["fleet", "shared"])
def test_every_real_event_renders_as_the_python_renderers_do(where, shared_data) -> None:
    events, timeline = _real_rows(FLEET if where == "fleet" else shared_data / "evtx")
    assert len(events) > (2000 if where == "fleet" else 400)
    for rows, csv_r, json_r, text, columns in (
            (events, R.EVENT_CSV, R.EVENT_JSON, R.EVENT_TEXT, R.EVENT_COLUMNS),
            (timeline, R.TIMELINE_CSV, R.TIMELINE_JSON, R.TIMELINE_TEXT, R.TIMELINE_COLUMNS)):
        _same(csv_r, rows)
        _same(json_r, rows)
        # and the definitions the Python renderers stand for: csv.writer after the guard, orjson
        assert csv_r.text(rows) == render_csv(safe_cells_at(list(r), text) for r in rows)
        assert json_r.text(rows) == "".join(json_line(columns, r) for r in rows)
    if where == "shared":  # the real logs carry non-ASCII text, commas and quotes
        assert any(not line.isascii() for line in R.EVENT_JSON.lines(events))
        assert any('"' in line for line in R.EVENT_CSV.lines(events))


class Kind(str, enum.Enum):
    A = "update-installed"


class Number(enum.IntEnum):
    SEVEN = 7


class Text(str):
    pass


HOSTILE = [
    "", "plain", "KB5051987", "a,b", 'say "hi"', '"', '""', ",", "=SUM(A1)", "+1", "-2", "@x",
    "\tt", "\rr", "\r", "\n", "\r\n", "line\nbreak", "cr\rinside", "crlf\r\nx", "=a\nb", "x\n=",
    "'quote", " lead", "trail ", "\x00nul", "ctl\x01\x08\x0b\x0c\x1f\x7f", "back\\slash/",
    "é,ü", "naïve", "日本語", "emoji 😀", "𝄞 astral, \"quoted\"", "\u2028\u2029\ufeff",
    "\ud800", "lone \udfff low", "=\ud83d", "pair \ud83d\ude00", "x" * 10_000,
    "é" * 3000 + "\n" + '"' * 50, None, 0, 1, -1, -7, 12345678901234, 2**63 - 1, 2**63,
    2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**40, -10**40, True, False, 1.5, 2.0, -0.0,
    float("nan"), float("inf"), ["a", 1], ["x", [1]], {"k": "v", "a": [1, 2]}, ("t", 2), [],
    {}, dt.datetime(2025, 2, 1, 7, 18, tzinfo=dt.timezone.utc), dt.date(2025, 2, 1),
    Kind.A, Number.SEVEN, Text("sub,class"), b"bytes", object,
]


def _hostile_rows(width: int, n: int, seed: int) -> list[list]:
    rnd = random.Random(seed)
    common = [v for v in HOSTILE if type(v) in (str, int, type(None))  # and orjson takes it
              and not isinstance(_outcome(orjson.dumps, v), tuple)]
    rows = []
    for k in range(n):
        # mostly rows of the kinds rendered in C (each hostile value in turn), some of anything
        pool = HOSTILE if k % 4 == 0 else common
        rows.append([pool[(k + i * 7) % len(pool)] if i == k % width else rnd.choice(pool)
                     for i in range(width)])
    return rows


@pytest.mark.parametrize("name", list(RENDERERS))
def test_hostile_cells_render_as_the_python_renderers_do(name) -> None:
    renderer = RENDERERS[name]
    width = len(R.EVENT_COLUMNS if name.startswith("event") else R.TIMELINE_COLUMNS)
    rows = _hostile_rows(width, 1500, seed=len(name))
    for row in rows:  # one by one: a row the Python renderer refuses fails alone
        _same(renderer, [row])
    good = [r for r in rows if not isinstance(_outcome(renderer.py_lines, [r]), tuple)]
    assert len(good) > 1000
    _same(renderer, good)
    _same(renderer, tuple(tuple(r) for r in good))


def test_each_hostile_value_in_every_kind_of_position() -> None:
    for text, columns in (((0, 2), ["a", "b", "c"]), ((), ["a", "b", "a"]),
                          ((0, 1, 2), ["é\"k", "b", "\n"])):
        renderers = (CsvRows(3, text), JsonRows(columns))
        for value in HOSTILE:
            for row in ([value, value, value], ["s", value, None], (1, "x", value)):
                for renderer in renderers:
                    _same(renderer, [row])
                    _same(renderer, [row, row])


def test_rows_that_are_not_lists_of_the_width_go_to_python() -> None:
    csv_r, json_r = CsvRows(3, (0,)), JsonRows(["a", "b", "c"])
    for rows in ([["a", "b"]], [["a", "b", "c", "extra"]], [{0: "a", 1: "b", 2: "c"}],
                 ["abc"], [range(3)], [None], []):
        for renderer in (csv_r, json_r):
            _same(renderer, rows)
            assert _outcome(renderer.text, iter(rows)) == _outcome(renderer.text, rows)
    assert JsonRows([]).lines([[], [1]]) == ["{}\n", "{}\n"]
    assert CsvRows(0, ()).text([[], ()]) == "\n\n"


def test_values_at_the_edges_of_the_fast_paths() -> None:
    json_r = JsonRows(["n"])
    assert json_r.lines([[2**64 - 1], [-2**63], [True], [None]]) == [
        '{"n":18446744073709551615}\n', '{"n":-9223372036854775808}\n', '{"n":true}\n',
        '{"n":null}\n']
    with pytest.raises(orjson.JSONEncodeError, match="64-bit"):
        json_r.text([[0], [2**64]])
    with pytest.raises(orjson.JSONEncodeError, match="surrogates"):
        json_r.lines([["ok"], ["\udc00"]])
    assert json_r.lines([["\x00\x1f\x7f\"\\/é😀"]]) == [
        '{"n":"\\u0000\\u001f\x7f\\"\\\\/é😀"}\n']
    csv_r = CsvRows(3, (0,))
    assert csv_r.lines([["=1", "=1", "a\rb"], ['a"b', "x\ny", True]]) == [
        "'=1,=1,a\rb\n", '"a""b","x\ny",True\n']
    assert csv_r.text([["\ud800", "\udfff", 2**70]]) == "\ud800,\udfff,%d\n" % 2**70


def test_no_reference_is_lost_or_kept() -> None:
    csv_r, json_r = CsvRows(2, (0,)), JsonRows(["a", "b"])
    rows = [["x" * 40, 2**64 - 1], ["é" * 5, None], ["=f", 1.5], [True, "s"], ["\ud800", 1]]
    before = [sys.getrefcount(v) for r in rows for v in r] + [sys.getrefcount(r) for r in rows]
    for _ in range(50):
        for renderer in (csv_r, json_r):
            _same(renderer, rows[:-1])
            _same(renderer, rows)  # JSON: raises on the lone surrogate
    after = [sys.getrefcount(v) for r in rows for v in r] + [sys.getrefcount(r) for r in rows]
    assert after == before


def test_renderers_share_nothing_between_threads() -> None:
    events, timeline = _real_rows(FLEET / "HP-WS-001")
    work = [(R.EVENT_CSV, events), (R.EVENT_JSON, events), (R.TIMELINE_CSV, timeline),
            (R.TIMELINE_JSON, timeline)] * 4
    want = ["".join(r.py_lines(rows)) for r, rows in work]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(lambda w: w[0].text(w[1]), work)) == want


def _python_renderers(monkeypatch) -> None:
    monkeypatch.setattr(R, "event_text", R.event_text_py)
    monkeypatch.setattr(R, "timeline_order", R.timeline_order_py)
    monkeypatch.setattr(R, "write_timeline", R.write_timeline_py)
    for renderer in RENDERERS.values():
        monkeypatch.setattr(renderer, "lines", renderer.py_lines)
        monkeypatch.setattr(renderer, "text", lambda rows, r=renderer: "".join(r.py_lines(rows)))


@pytest.mark.parametrize("where", ["fleet", "shared"])
def test_whole_runs_write_the_files_the_python_renderers_write(where, shared_data, tmp_path,
                                                               monkeypatch) -> None:
    source = FLEET if where == "fleet" else shared_data / "evtx"
    opts = TimelineOptions(hash_inputs=False)
    run_timeline([source], tmp_path / "c", opts, html=False)
    with monkeypatch.context() as m:
        _python_renderers(m)
        assert R.EVENT_CSV.text.__name__ == "<lambda>"
        run_timeline([source], tmp_path / "py", opts, html=False)
    names = sorted(p.name for p in (tmp_path / "py").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "c").iterdir())
    assert {"events.csv", "events.jsonl", "timeline.csv", "timeline.jsonl"} <= set(names)
    for name in names:
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "py" / name).read_bytes(), name


def test_random_text_renders_as_the_python_renderers_do() -> None:
    """Strings mixing every character class at every offset (the C scans eight bytes at a
    time), in guarded and plain positions, JSON keys included."""
    rnd = random.Random(7)
    chars = ["a", "Z", "0", " ", "é", "日", "😀", '"', ",", "\n", "\r", "\\", "/", "\x00",
             "\x1f", "\x7f", "=", "-", "+", "@", "\t", "'"]

    ascii_chars = [c for c in chars if c.isascii()] + ["a"] * 20  # mostly letters, some specials

    def text() -> str:
        pool = ascii_chars if rnd.random() < 0.6 else chars
        s = "".join(rnd.choice(pool) for _ in range(rnd.randint(0, 40)))
        if rnd.random() < 0.03:  # now and then a lone surrogate (JSON refuses it, CSV keeps it)
            s = s[:5] + rnd.choice(["\ud800", "\udc00"]) + s[5:]
        return s

    for _ in range(300):
        width = rnd.randint(1, 5)
        renderers = (CsvRows(width, rnd.sample(range(width), rnd.randint(0, width))),
                     JsonRows([text().replace("\ud800", "").replace("\udc00", "")
                               for _ in range(width)]))
        rows = [[rnd.choice([text(), text(), rnd.randint(-2**63, 2**64 - 1), None])
                 for _ in range(width)] for _ in range(4)]
        for renderer in renderers:
            _same(renderer, rows)
            for row in rows:
                _same(renderer, [row])


# -- EventLines: the events' lines, the timeline's keys and lines, in C ------------------------

def _timeline_bytes(write, items) -> tuple[bytes, bytes, int]:
    csv_parts: list[bytes] = []
    json_parts: list[bytes] = []
    n = write(items, csv_parts.append, json_parts.append, 1 << 22)
    return b"".join(csv_parts), b"".join(json_parts), n


def _order(fn, events) -> list[int]:
    """The timeline's order of these events, as their positions."""
    where = {id(ev): k for k, ev in enumerate(events)}
    return [where[id(item)] for item in fn(events, [])]


def lines_c(events):
    """Everything EventLines writes of these events, in C: their events text, their timeline
    keys and their timeline lines in the order given."""
    return (R.event_text(events), _order(R.timeline_order, events),
            _timeline_bytes(R.write_timeline, events))


def lines_py(events):
    """The same by the Python definitions (rows.py)."""
    return (R.event_text_py(events), _order(R.timeline_order_py, events),
            _timeline_bytes(R.write_timeline_py, events))


@pytest.mark.parametrize("where", ["fleet", "shared"])
def test_event_lines_write_what_the_python_definition_writes(where, shared_data) -> None:
    n = 0
    for item in discover([FLEET if where == "fleet" else shared_data / "evtx"]):
        events = read_item(item, hash_inputs=False).events
        assert lines_c(events) == lines_py(events), item.source
        n += len(events)
    assert n > (2000 if where == "fleet" else 400)


_UTC = dt.timezone.utc
TIMES = [None, dt.datetime(2025, 2, 1, 7, 18, 0, 123456, tzinfo=_UTC),
         dt.datetime(1, 1, 1, tzinfo=_UTC),
         dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=_UTC),
         dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=_UTC),
         dt.datetime(1900, 3, 1, 0, 0, 0, 999999, tzinfo=_UTC),
         dt.datetime(2255, 6, 5, 23, 47, 34, 740991, tzinfo=_UTC),  # about 2**53 microseconds
         dt.datetime(2024, 2, 29, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
         dt.datetime(2024, 2, 29, 12, tzinfo=dt.timezone(dt.timedelta(0))),
         dt.datetime(2024, 2, 29, 12)]  # naive: the reference's astimezone takes it as local
TEXTS = ["", "plain", " lead", "trail ", "a  b", "   ", "\u3000wide\u2003", "\x85x\xa0",
         "\x1c\x1fctl", "=SUM(A1)", "-1", 'q"uote, comma', "line\nbreak", "\r", "é日😀",
         "\ud800", "x  \ud800  y", Text("sub"), None, 7, True]


HOSTILE_FIELDS = {
    "event_id": [19, 0, -1, 2**64, None, "19"],
    "record_id": [1, 0, -5, 2**63, 2**64, 10**40, True, "12", None],
    "category": ["update-installed", "boot", "nope", "", Text("boot")],
    "revision": [None, 1, 2**70],
    "result": ["", "failure", "success", Text("failure"), None],
    "reboot_required": [None, True, False],
    "update_class": ["", "hotpatch", "  ", None, Text("x")],
    "release_month": ["2025-02", "", None, "  ", 5],
}


def _event(rnd: random.Random, k: int) -> Event:
    """A plain event (as normalise makes them) with hostile values in one or two fields."""
    ev = Event("HP-WS-001", TIMES[k % len(TIMES)], "System", "Microsoft-Windows-Servicing", 2,
               1000 + k, "C:/logs/Setup.evtx", "servicing-success", kb="KB5051987",
               title="2025-02 Security Update", update_guid="ABC", revision=1,
               error_code="0x800f0922" if k % 2 else "", result="failure" if k % 3 else "",
               package_state="Staged->Installed", os_build="26100.3194",
               update_class="hotpatch" if k % 4 else "", release_month="2025-02",
               detail="" if k % 5 else "done  twice")
    for name in rnd.sample(R.EVENT_COLUMNS, rnd.choice([1, 1, 2])):
        if name != "time":
            setattr(ev, name, rnd.choice(HOSTILE_FIELDS.get(name, TEXTS)))
    return ev


def test_event_lines_on_hostile_events() -> None:
    """Every kind of field the C path reads, in every kind of value: the same lines, or the same
    error, as the Python definition (one event at a time, so one refused event fails alone)."""
    rnd = random.Random(18)
    events = [_event(rnd, k) for k in range(3000)]
    good = []
    for ev in events:
        for c, py in ((R.event_text, R.event_text_py),
                      (lambda e: _order(R.timeline_order, e),
                       lambda e: _order(R.timeline_order_py, e)),
                      (lambda e: _timeline_bytes(R.write_timeline, e),
                       lambda e: _timeline_bytes(R.write_timeline_py, e))):
            want = _outcome(py, [ev])
            assert _outcome(c, [ev]) == want, ev
        if not isinstance(_outcome(lines_py, [ev])[0], type):
            good.append(ev)
    assert len(good) > 600
    # the order compares devices: among events whose devices are not all str (never so in a
    # run: normalise makes them) it fails as the definition does
    assert _outcome(lines_c, good) == _outcome(lines_py, good)
    same_kind = [e for e in good if type(e.device) is str]
    assert len(same_kind) > 500
    assert lines_c(same_kind) == lines_py(same_kind)
    assert lines_c(tuple(same_kind)) == lines_py(same_kind)
    # and both ways were taken: C for most, the reference for the events C does not take
    given: dict[str, list] = {"events": [], "timeline": []}
    counted = _rowfmt.EventLines(
        Event, R.EVENT_COLUMNS, R.EVENT_CSV.fmt, R.EVENT_JSON.fmt, R.TIMELINE_CSV.fmt,
        R.TIMELINE_JSON.fmt, R._DESC_BY_VALUE,
        lambda ev: given["events"].append(ev) or R._event_text_one(ev),
        lambda ev: given["timeline"].append(ev) or R.timeline_lines_py(ev))
    assert counted.render(good) == R.event_text_py(good)
    assert _timeline_bytes(counted.timeline, good) == _timeline_bytes(R.write_timeline_py, good)
    for way, taken in given.items():  # half the times are not UTC or past 2**53 us
        assert 50 < len(taken) < len(good) * 0.7, way


def test_event_lines_take_only_plain_events() -> None:
    class Sub(Event):
        __slots__ = ()

    when = dt.datetime(2025, 2, 1, tzinfo=_UTC)
    plain = Event("d", when, "c", "p", 1, 2, "s", "boot")
    sub = Sub("d", when, "c", "p", 1, 2, "s", "boot")
    unset = Event.__new__(Event)
    for events in ([sub], [plain, sub, plain], [unset], [plain, unset], ["text"], []):
        for k in range(3):
            assert _outcome(lambda e: lines_c(e)[k], events) == \
                _outcome(lambda e: lines_py(e)[k], events)
    assert R.timeline_key_py(plain) == ("2025-02-01T00:00:00.000000Z", "d", "2")
    assert R._LINES.order([plain, sub], []) is None  # the definition sorts those
    assert R._LINES.order([plain, plain], []) == [0, 1]


def test_event_lines_lose_and_keep_no_reference() -> None:
    rnd = random.Random(5)
    events = [_event(rnd, k) for k in range(200)]
    events = [e for e in events if not isinstance(_outcome(lines_py, [e])[0], type)]
    # not None, True, small ints and the like: shared, their counts move with anything
    fields = [v for e in events for f in R.EVENT_COLUMNS
              if sys.getrefcount(v := getattr(e, f)) < 1000]
    before = [sys.getrefcount(v) for v in fields] + [sys.getrefcount(e) for e in events]
    for _ in range(20):
        lines_c(events)
        for part in (R.event_text, lambda e: R.timeline_order(e, []),
                     lambda e: _timeline_bytes(R.write_timeline, e)):
            _outcome(part, events + [Event.__new__(Event)])
    after = [sys.getrefcount(v) for v in fields] + [sys.getrefcount(e) for e in events]
    assert after == before


def test_event_lines_hold_the_fields_a_python_renderer_may_change() -> None:
    """A cell that is not plain goes to the Python renderer, which runs its __str__: one that
    changes the event while its lines are written leaves the lines as the reference writes them
    (the fields read before; under ASan, no freed field is read)."""
    when = dt.datetime(2025, 2, 1, tzinfo=_UTC)

    class Changer:
        done = False

        def __str__(self) -> str:
            if not self.done:  # once: the CSV renderer's call, before the JSON one
                self.done = True
                ev.title, ev.device = "T" * 64 + str(id(self)), "D" * 64 + str(id(self))
                del ev.source
                gc.collect()
            return "changed"

    def fresh(where: str) -> Event:
        ev = Event("dev" * 20, when, "c", "p", 1, 2, "src" * 20, "update-installed", kb="",
                   title="title" * 20)
        setattr(ev, where, Changer())  # the events' lines render package_state, the timeline's
        return ev  # source

    for where, c, py in (
            ("package_state", R.event_text, R.event_text_py),
            ("source", lambda e: _timeline_bytes(R.write_timeline, e),
             lambda e: _timeline_bytes(R.write_timeline_py, e))):
        ev = fresh(where)
        want = py([ev])
        ev = fresh(where)
        assert c([ev]) == want, where
        text = want[0] if isinstance(want[0], str) else want[0].decode()
        assert "changed" in text and ("dev" * 20) in text, where  # the device read before


_FAULTS = """
import random, resource, sys
from hpforensics import _rowfmt
kept = _rowfmt.keep_freed_memory() if sys.argv[1] == "keep" else None
rnd = random.Random(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):  # text of every size up to megabytes, built and freed, as a run does
    text = b"x" * rnd.randrange(256 << 10, 24 << 20)
    del text
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt: glibc only")
def test_keep_freed_memory_spares_the_page_faults_of_reused_memory():
    """run_timeline asks glibc to keep freed memory: blocks freed and allocated again come
    back without a page fault each (a fleet run's faults halved)."""
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], int(out[1])

    (_, plain), (kept, tuned) = faults("plain"), faults("keep")
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        # the sanitizer run: its allocator stands in for glibc's, refuses mallopt, and the
        # call must say so (False) rather than claim a setting it did not make
        assert kept == "False"
        return
    assert kept == "True"
    assert tuned * 3 < plain, (plain, tuned)
