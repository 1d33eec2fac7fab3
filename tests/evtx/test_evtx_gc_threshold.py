"""A timeline run raises the GC threshold for its duration; overlapping runs (threads, as the
fleet's Dask workers run them) leave the process with the threshold it had."""
from __future__ import annotations

import gc
import threading
from pathlib import Path

from hpforensics.timeline.pipeline import TimelineOptions

from hpforensics.runs.timeline import run_timeline

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "evtx" / "HP-WS-001"


def test_overlapping_runs_restore_the_threshold(tmp_path) -> None:
    before = gc.get_threshold()
    seen: list[int] = []

    def run(name: str) -> None:
        run_timeline([SAMPLE], tmp_path / name, TimelineOptions(hash_inputs=False), html=False)
        seen.append(1)

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 3 and gc.get_threshold() == before
    for i in range(1, 3):  # and the runs wrote what a lone run writes
        for name in ("events.csv", "timeline.jsonl", "compliance.csv"):
            assert (tmp_path / f"t{i}" / name).read_bytes() == (tmp_path / "t0" / name).read_bytes()
