"""The timeline's merge in C (`_rowfmt.merge_write`) against its reference, SpillSorter's
iteration (heapq.merge over the same sources): the same lines in the same order, on the real
logs' and the sample fleet's timeline rows split into spilled runs, and on rows built to tie."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from hpforensics import _rowfmt
from hpforensics.evtx.ingest import discover
from hpforensics.timeline.outputs import RowSink, SpillSorter
from hpforensics.timeline.reading import read_item

FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"


def _timeline_rows(source: Path) -> list[tuple]:
    rows: list[tuple] = []
    for i, item in enumerate(discover([source])):
        rows.extend(read_item(item, hash_inputs=False, index=i).timeline)
    return rows


def _sorter(tmp_path: Path, rows: list[tuple], limit: int, seed: int) -> SpillSorter:
    """The rows fed as the pipeline feeds them, an input's rows at a time, in an order of
    inputs shuffled so that runs interleave in time."""
    by_input: dict[int, list[tuple]] = {}
    for row in rows:
        by_input.setdefault(row[0][-1], []).append(row)
    order = list(by_input)
    random.Random(seed).shuffle(order)
    sorter = SpillSorter(tmp_path, limit=limit)
    for i in order:
        sorter.extend(by_input[i])
    return sorter


def _merged(sorter: SpillSorter, flush: int = 1 << 22) -> tuple[bytes, bytes, int, int]:
    csv_parts: list[bytes] = []
    json_parts: list[bytes] = []
    n = _rowfmt.merge_write(sorter.sources(), csv_parts.append, json_parts.append, 1, 2, flush)
    return b"".join(csv_parts), b"".join(json_parts), n, len(csv_parts)


def _reference(rows) -> tuple[bytes, bytes, int]:
    rows = list(rows)
    return ("".join(r[1] for r in rows).encode(), "".join(r[2] for r in rows).encode(),
            len(rows))


@pytest.mark.parametrize("where", ["fleet", "real"])
def test_real_timeline_rows_merge_as_the_reference_does(where, shared_data, tmp_path) -> None:
    rows = _timeline_rows(FLEET if where == "fleet" else shared_data / "evtx")
    assert len(rows) > 500
    for limit, seed in ((len(rows) + 1, 0), (97, 1), (1000, 2)):
        expected = _reference(_sorter(tmp_path / f"r{seed}", rows, limit, seed))
        csv, json, n, parts = _merged(_sorter(tmp_path / f"c{seed}", rows, limit, seed),
                                      flush=65536)
        assert (csv, json, n) == expected
        assert parts >= max(1, len(json) // (2 * 65536))  # handed on in blocks, not at once


def _tying_rows(rnd: random.Random, n: int, source: int) -> list[tuple]:
    """Keys drawn from a few values, so that many tie within and across sources; lines with
    text of every width (UTF-8 of 1-4 bytes)."""
    text = ["a", "é", "€", "\U0001f600", ",", '"', "\n"]
    rows = []
    for k in range(n):
        key = (f"2025-0{rnd.randint(1, 3)}-01T00:00:00Z", rnd.choice(["A", "B", "b"]), "",
               rnd.randint(0, 2))
        line = "".join(rnd.choice(text) for _ in range(rnd.randint(0, 6)))
        rows.append((key, f"{source},{k},{line}\n", f'{{"s":{source},"k":{k}}}\n'))
    rows.sort(key=lambda r: r[0])
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_rows_that_tie_come_out_in_heapq_merge_order(seed: int) -> None:
    import heapq

    rnd = random.Random(seed)
    sources = [_tying_rows(rnd, rnd.randint(0, 60), s) for s in range(rnd.randint(0, 7))]
    if sources and rnd.random() < 0.3:
        sources.append(list(sources[0]))  # a source holding the very rows of another
    parts: list[bytes] = []
    jparts: list[bytes] = []
    n = _rowfmt.merge_write([iter(s) for s in sources], parts.append, jparts.append, 1, 2,
                            rnd.randint(1, 200))
    ref = list(heapq.merge(*sources))
    assert n == len(ref)
    assert b"".join(parts) == "".join(r[1] for r in ref).encode()
    assert b"".join(jparts) == "".join(r[2] for r in ref).encode()


def test_write_merged_writes_the_lines_after_the_header(tmp_path: Path) -> None:
    rows = _tying_rows(random.Random(5), 200, 0)
    sorter = SpillSorter(tmp_path / "w", limit=50)
    sorter.extend(rows[:120])
    sorter.extend(rows[120:])
    csv, json, _ = _reference(sorter)  # a sorter's sources can be read again
    with RowSink(tmp_path, "t", ["a", "b"]) as out:
        out.write_merged(sorter)
    assert out.count == 200
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\n" + csv
    assert (tmp_path / "t.jsonl").read_bytes() == json


def _sink() -> list[bytes]:
    return []


def test_a_line_that_is_not_text_raises_as_the_text_file_did() -> None:
    rows = [(("1",), "ok\n", "{}\n"), (("2",), "\ud800\n", "{}\n")]
    out = _sink()
    with pytest.raises(UnicodeEncodeError):
        _rowfmt.merge_write([rows], out.append, out.append, 1, 2, 1 << 20)


@pytest.mark.parametrize("bad", [
    [("k", "only a csv line")],  # too short
    [["k", "csv\n", "{}\n"]],  # a list, not a tuple
    [(("k",), b"csv\n", "{}\n")],  # bytes for a line
])
def test_rows_of_another_shape_are_a_type_error(bad) -> None:
    with pytest.raises(TypeError):
        _rowfmt.merge_write([bad], _sink().append, _sink().append, 1, 2, 1 << 20)


def test_errors_of_sources_and_writers_reach_the_caller() -> None:
    def failing():
        yield (("1",), "a\n", "{}\n")
        raise OSError("run file gone")

    with pytest.raises(OSError, match="run file gone"):
        _rowfmt.merge_write([failing(), [(("0",), "b\n", "{}\n")]], _sink().append,
                            _sink().append, 1, 2, 1 << 20)

    def full(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        _rowfmt.merge_write([[(("1",), "a\n", "{}\n")]], full, full, 1, 2, 1)
    with pytest.raises(ValueError):
        _rowfmt.merge_write([], full, full, 0, 2, 1)


def test_no_reference_is_lost_or_kept() -> None:
    rows = [((f"{i:04d}",), f"{i}\n", "{}\n") for i in range(100)]
    sources = [rows[0::3], rows[1::3], rows[2::3]]
    before = [sys.getrefcount(r) for r in rows]
    for _ in range(50):
        _rowfmt.merge_write(sources, _sink().append, _sink().append, 1, 2, 64)
        with pytest.raises(UnicodeEncodeError):
            _rowfmt.merge_write(sources + [[(("0050",), "\udfff", "{}\n")]], _sink().append,
                                _sink().append, 1, 2, 64)
    assert [sys.getrefcount(r) for r in rows] == before
