"""The fast CSV renderer writes exactly what csv.writer wrote after the formula guard."""
from __future__ import annotations

import itertools

from hpforensics.timeline import rows as R
from hpforensics.timeline.outputs import CsvRows, render_csv, safe_cells_at

TRICKY = ["plain", "a,b", 'say "hi"', "=SUM(A1)", "+1", "-2", "@x", "\tt", "\rr", "line\nbreak",
          "cr\rinside", "", " lead", "é,ü", None, 0, -7, 12345678901234, 1.5, 2.0, True, False,
          "KB5051987", "2025-02-01T07:18:00.000000Z"]


def test_csv_rows_equal_the_csv_module_on_tricky_cells() -> None:
    width = 6
    rows = [list(c) for c in itertools.islice(itertools.product(TRICKY, repeat=2), 0, None, 7)]
    rows = [(r * 3)[:width] for r in rows]
    for text in ((), range(width), (0, 2, 4), (1, 3)):
        renderer = CsvRows(width, text)
        got = "".join(renderer.lines(rows))
        assert got == render_csv(safe_cells_at(list(r), sorted(text)) for r in rows)


def test_event_and_timeline_renderers_cover_their_tables() -> None:
    row = [TRICKY[i % len(TRICKY)] for i in range(len(R.EVENT_COLUMNS))]
    assert R.EVENT_CSV.lines([row]) == [render_csv([safe_cells_at(row, R.EVENT_TEXT)])]
    row = [TRICKY[-i % len(TRICKY)] for i in range(len(R.TIMELINE_COLUMNS))]
    assert R.TIMELINE_CSV.lines([row]) == [render_csv([safe_cells_at(row, R.TIMELINE_TEXT)])]


def test_json_rows_equal_json_line_on_tricky_values() -> None:
    from hpforensics.timeline.outputs import JsonRows, json_line

    for columns in (R.EVENT_COLUMNS, R.TIMELINE_COLUMNS, ["a", "b", "a"]):
        rows = [[TRICKY[(i * 7 + k) % len(TRICKY)] for i in range(len(columns))]
                for k in range(len(TRICKY))]
        assert JsonRows(columns).lines(rows) == [json_line(columns, r) for r in rows]


def test_workers_pieces_give_the_single_process_files(tmp_path) -> None:
    """With --jobs 2 the workers hand the events over as files (block-copied by the parent):
    every output is byte-identical to one process, and no piece is left behind."""
    from pathlib import Path

    from hpforensics.timeline.pipeline import TimelineOptions

    from hpforensics.runs.timeline import run_timeline

    fleet = Path(__file__).resolve().parents[2] / "samples" / "evtx"
    for jobs in (1, 2):
        run_timeline([fleet], tmp_path / f"j{jobs}", TimelineOptions(hash_inputs=False, jobs=jobs),
                     html=False)
    names = sorted(p.name for p in (tmp_path / "j1").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "j2").iterdir())
    assert "events.csv" in names and not [n for n in names if not n.endswith((".csv", ".jsonl"))]
    for name in names:
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes(), name
    assert len((tmp_path / "j2" / "events.csv").read_text().splitlines()) == 2572


def test_workers_rotating_piece_files_give_the_same_files(tmp_path, monkeypatch) -> None:
    """A worker appends every input's events to one piece file and starts a new one past a
    size limit (the parent removes the old one once it moved on): with a limit that rotates on
    every input, the outputs are still those of one process."""
    from pathlib import Path

    from hpforensics.timeline import reading
    from hpforensics.timeline.pipeline import TimelineOptions
    from hpforensics.runs.timeline import run_timeline

    fleet = Path(__file__).resolve().parents[2] / "samples" / "evtx" / "HP-WS-001"
    monkeypatch.setattr(reading, "_PIECE_LIMIT", 0)  # forked workers inherit it
    for jobs in (1, 2):
        run_timeline([fleet], tmp_path / f"j{jobs}", TimelineOptions(hash_inputs=False, jobs=jobs),
                     html=False)
    for name in ("events.csv", "events.jsonl", "timeline.csv", "timeline.jsonl"):
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "j2").iterdir()) == sorted(
        p.name for p in (tmp_path / "j1").iterdir())
