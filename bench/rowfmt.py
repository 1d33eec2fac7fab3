"""The timeline's four per-event renderings (events.csv, events.jsonl, timeline.csv,
timeline.jsonl): the C renderer (hpforensics._rowfmt behind CsvRows / JsonRows) against the
Python renderers it replaced (`py_lines`, still the reference for rows it hands back), side
by side on the same rows; then the whole per-event steps in C (rows.event_text: an input's
events lines; rows.timeline_order and rows.write_timeline: the timeline's order and lines,
at the end of a run) against their Python definitions (rows.event_text_py,
timeline_order_py, write_timeline_py); then whole `hpforensics timeline --jobs 1` runs with each
(the Python side: the definitions and the Python renderers).

Rows: every relevant event of the sample fleet (samples/evtx) and of the real logs in
../shared/data/evtx, as reading._rendered sees them; each rendering is timed as _rendered
calls it (the events joined into one text, the timeline as one line per event), best of
REPEAT. Whole runs: CPU seconds of the CLI process, best of HPF_BENCH_REPEAT (default 3), on
samples/evtx and on a corpus of copies of it of about HPF_BENCH_MB megabytes (default 100;
0 skips it); the Python side runs the same CLI with the four renderers set back to Python.
"""
from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import timeline as timeline_bench  # noqa: E402 - its corpus of copies
from timeline import build_corpus  # noqa: E402

from hpforensics.timeline import rows as R  # noqa: E402
from hpforensics.evtx.ingest import discover  # noqa: E402
from hpforensics.timeline.reading import read_item  # noqa: E402

SHARED = Path(os.environ.get("HPF_SHARED_DATA", REPO.parent / "shared" / "data")) / "evtx"
FLEET = REPO / "samples" / "evtx"
REPEAT = 7
RUNS = int(os.environ.get("HPF_BENCH_REPEAT", "3"))
CORPUS_MB = int(os.environ.get("HPF_BENCH_MB", "100"))

# The CLI with the Python renderers, as it was before the C one.
_PYTHON_CLI = """
import sys
from hpforensics.timeline import rows as R
R.event_text = R.event_text_py
R.timeline_order = R.timeline_order_py
R.write_timeline = R.write_timeline_py
for r in (R.EVENT_CSV, R.EVENT_JSON, R.TIMELINE_CSV, R.TIMELINE_JSON):
    r.lines = r.py_lines
    r.text = lambda rows, r=r: "".join(r.py_lines(rows))
from hpforensics.cli.app import main
sys.argv[0] = "hpforensics"
main()
"""


def rows_of(path: Path) -> list[tuple[list[list], list[list], list]]:
    """(event rows, timeline rows, events) of each input: _rendered renders one input at a
    time."""
    groups = []
    for item in discover([path]):
        events, timeline = [], []
        evs = read_item(item, hash_inputs=False).events
        for ev in evs:
            values = R.event_values(ev)
            events.append(values)
            timeline.append(R.timeline_values(ev, values[R.TIME_INDEX]))
        groups.append((events, timeline, evs))
    return groups


def best(fn, groups: list[list[list]]) -> float:
    """Best time of REPEAT for rendering every group, in us per row."""
    times = []
    gc.disable()
    try:
        for _ in range(REPEAT):
            start = time.perf_counter()
            for rows in groups:
                fn(rows)
            times.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return min(times) * 1e6 / sum(map(len, groups))


def renderings(name: str, path: Path) -> None:
    groups = rows_of(path)
    events, timeline = [g[0] for g in groups], [g[1] for g in groups]
    cases = [("events.csv", R.EVENT_CSV, events, True),
             ("events.jsonl", R.EVENT_JSON, events, True),
             ("timeline.csv", R.TIMELINE_CSV, timeline, False),
             ("timeline.jsonl", R.TIMELINE_JSON, timeline, False)]
    print(f"\n{name}: {sum(map(len, events))} events in {len(groups)} inputs; us per event")
    print(f"{'rendering':16} {'python':>8} {'C':>8} {'x':>6}")
    total_py = total_c = 0.0
    for what, r, rows, joined in cases:
        py = best((lambda rs: "".join(r.py_lines(rs))) if joined else r.py_lines, rows)
        c = best(r.text if joined else r.lines, rows)
        for g in rows:
            assert (r.text(g) if joined else r.lines(g)) == (
                "".join(r.py_lines(g)) if joined else r.py_lines(g))
        total_py, total_c = total_py + py, total_c + c
        print(f"{what:16} {py:8.2f} {c:8.2f} {py / c:6.1f}")
    print(f"{'all four':16} {total_py:8.2f} {total_c:8.2f} {total_py / total_c:6.1f}")
    inputs = [g[2] for g in groups]

    def order(fn):
        return lambda evs: fn(evs, [])

    def timeline(write):
        return lambda evs: write(evs, _sink.append, _sink.append, 1 << 22)

    _sink: list[bytes] = []
    for what, py_fn, c_fn, note in (
            ("event_text", R.event_text_py, R.event_text, "values, the two events renderings"),
            ("timeline_order", order(R.timeline_order_py), order(R.timeline_order),
             "the keys and a stable sort, an input at a time"),
            ("write_timeline", timeline(R.write_timeline_py), timeline(R.write_timeline),
             "message, the two timeline renderings, UTF-8")):
        py, c = best(py_fn, inputs), best(c_fn, inputs)
        _sink.clear()
        print(f"{what:16} {py:8.2f} {c:8.2f} {py / c:6.1f}  ({note})")
    assert all(R.event_text(evs) == R.event_text_py(evs) for evs in inputs)


def _cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def cli_cpu(argv: list[str]) -> float:
    cpu = _cpu()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    if proc.returncode not in (0, 3):
        raise SystemExit(proc.stderr)
    return _cpu() - cpu


def whole_runs(name: str, corpus: Path, tmp: Path) -> None:
    # Read once first (a corpus just written pays for write-back and a cold cache), then the
    # two sides in turn, so that a noisy moment hits both.
    os.sync()
    for f in corpus.rglob("*"):
        if f.is_file():
            f.read_bytes()
    args = ["timeline", str(corpus), "--no-hash", "--jobs", "1", "--no-html"]
    outs = {side: tmp / f"{name.replace(' ', '-')}-{side}" for side in ("python", "C")}
    argv = {"python": [sys.executable, "-c", _PYTHON_CLI, *args, "-o", str(outs["python"])],
            "C": [sys.executable, "-m", "hpforensics", *args, "-o", str(outs["C"])]}
    used: dict[str, list[float]] = {"python": [], "C": []}
    for _ in range(RUNS):
        for side in used:
            used[side].append(cli_cpu(argv[side]))
    py, c = min(used["python"]), min(used["C"])
    for out in ("events.csv", "events.jsonl", "timeline.csv", "timeline.jsonl"):
        assert (outs["python"] / out).read_bytes() == (outs["C"] / out).read_bytes(), out
    events = sum(1 for _ in open(outs["C"] / "events.jsonl", "rb"))
    print(f"{name:28} {events:8} {py:9.2f} {c:9.2f} {(py - c) * 1e6 / events:10.2f}")


def main() -> None:
    renderings("sample fleet (samples/evtx)", FLEET)
    renderings("real logs (shared/data/evtx)", SHARED)
    print(f"\nhpforensics timeline --jobs 1 --no-hash --no-html: CPU s, best of {RUNS}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'input':28} {'events':>8} {'python s':>9} {'C s':>9} {'saved us/ev':>10}")
    with tempfile.TemporaryDirectory(prefix="hpf-bench-rowfmt-") as tmp_name:
        tmp = Path(tmp_name)
        whole_runs("samples/evtx", FLEET, tmp)
        if CORPUS_MB:
            fleet = sorted(FLEET.rglob("*.evtx"))
            timeline_bench.TARGET_MB = CORPUS_MB  # build_corpus's size
            build_corpus(tmp / "fleet", fleet, FLEET)
            whole_runs(f"fleet copies, {CORPUS_MB} MB", tmp / "fleet", tmp)


if __name__ == "__main__":
    main()
