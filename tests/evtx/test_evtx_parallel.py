"""--jobs N: the parent is one of the N readers, and the outputs are those of one process."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from hpforensics.timeline import reading
from hpforensics.evtx.ingest import discover
from hpforensics.timeline.pipeline import TimelineOptions
from hpforensics.runs.timeline import run_timeline

FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"


def test_parent_share_is_an_equal_part_of_the_bytes(shared_data: Path) -> None:
    items = discover([FLEET, shared_data / "evtx"])
    sizes = [os.path.getsize(i.path) for i in items]
    for workers in (1, 2, 3):
        mine = reading._parent_share(items, workers)
        own = sum(s for i, s in enumerate(sizes) if i in mine)
        # within one input of an equal share among workers + 1 readers
        assert abs(own - sum(sizes) / (workers + 1)) <= max(sizes), workers
        assert 0 < len(mine) < len(items)


def test_parent_reads_ahead_and_leaves_no_piece_open(tmp_path: Path, shared_data: Path) -> None:
    """Real logs and the fleet together, interleaved so that the parent's and the worker's
    inputs alternate: every output equals one process's, and the parent's piece file is
    closed when the run ends (a later run in the same process starts clean)."""
    logs = tmp_path / "logs"
    for k, src in enumerate(sorted(FLEET.rglob("*.evtx"))[:12]):
        dst = logs / f"{k:02d}" / src.relative_to(FLEET)
        dst.parent.mkdir(parents=True)
        shutil.copyfile(src, dst)
    for name in ("system.evtx", "plaso-System.evtx"):
        (logs / name.split(".")[0]).mkdir()
        shutil.copyfile(shared_data / "evtx" / name, logs / name.split(".")[0] / name)
    outs = {}
    for jobs in (1, 2, 3):
        out = tmp_path / f"j{jobs}"
        result = run_timeline([logs], out, TimelineOptions(hash_inputs=False, jobs=jobs),
                              html=False)
        assert not reading._PIECE, "the parent kept a piece file open"
        outs[jobs] = {p.name: p.read_bytes() for p in out.iterdir()}
        assert result.events > 1500
    assert outs[1].keys() == outs[2].keys() == outs[3].keys()
    for name in outs[1]:
        assert outs[1][name] == outs[2][name] == outs[3][name], name


def test_read_ahead_cap_waits_for_the_worker(tmp_path: Path, monkeypatch) -> None:
    """With no read-ahead allowed the parent waits for each worker result in turn, and the
    run still gives one process's outputs."""
    monkeypatch.setattr(reading, "_READ_AHEAD_EVENTS", 0)
    for jobs in (1, 2):
        run_timeline([FLEET / "HP-WS-001", FLEET / "HP-WS-003"], tmp_path / f"j{jobs}",
                     TimelineOptions(hash_inputs=False, jobs=jobs), html=False)
    for name in ("events.csv", "timeline.jsonl", "compliance.csv", "devices.csv"):
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes()
