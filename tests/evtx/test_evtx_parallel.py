"""--jobs N: the parent is one of the N readers, and the outputs are those of one process."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from hpforensics.timeline import reading
from hpforensics.evtx.ingest import discover
from hpforensics.timeline.pipeline import TimelineOptions
from hpforensics.runs.timeline import run_timeline

FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"


def _readers(items, opts) -> dict[int, int]:
    """Inputs read per process, from the piece files their events went to (<pid>-<n>.piece)."""
    counts: dict[int, int] = {}
    for part in reading.iter_read(items, opts):
        if part.events_pieces is not None:
            pid = int(part.events_pieces[0].stem.rpartition("-")[0])
            counts[pid] = counts.get(pid, 0) + 1
    return counts


def _fleet_items(tmp_path: Path, copies: int) -> list:
    for k in range(copies):
        shutil.copytree(FLEET, tmp_path / "logs" / f"{k:02d}")
    return discover([tmp_path / "logs"])


def test_parent_and_worker_share_the_inputs(tmp_path: Path) -> None:
    """Nothing is split in advance: the parent reads whatever nobody has started while the
    worker's next result is not ready, so both processes read a part of the inputs."""
    items = _fleet_items(tmp_path, 4)
    opts = TimelineOptions(hash_inputs=False, jobs=2, work_dir=tmp_path / "work")
    opts.work_dir.mkdir()
    counts = _readers(items, opts)
    assert len(items) / 2 < sum(counts.values()) <= len(items)  # some inputs hold no events
    assert len(counts) == 2 and os.getpid() in counts, counts
    assert min(counts.values()) >= 4, counts


_READ_INDICES = reading._read_indices


def _slowly(indices):  # at module level: the pool pickles the task's function by name
    time.sleep(0.3)
    return _READ_INDICES(indices)


def test_parent_takes_more_when_the_worker_is_slow(tmp_path: Path, monkeypatch) -> None:
    """A worker slowed down (forked after the patch, so it inherits it) leaves most inputs to
    the parent: the split follows how fast each side goes, not a fixed share of the bytes."""
    monkeypatch.setattr(reading, "_read_indices", _slowly)
    items = _fleet_items(tmp_path, 2)
    opts = TimelineOptions(hash_inputs=False, jobs=2, work_dir=tmp_path / "work")
    opts.work_dir.mkdir()
    counts = _readers(items, opts)
    assert counts.get(os.getpid(), 0) > 0.6 * sum(counts.values()), counts


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


def test_the_timeline_is_written_from_the_events_the_parent_holds(tmp_path: Path) -> None:
    """Workers send back their inputs' events and events lines, nothing of the timeline: while
    the inputs are read the work folder holds the workers' piece files and nothing else (no
    timeline text is held or spilled), and the timeline written at the end from the events is
    one process's, byte for byte."""
    items = _fleet_items(tmp_path, 3)
    opts = TimelineOptions(hash_inputs=False, jobs=2, work_dir=tmp_path / "work")
    opts.work_dir.mkdir()
    events = sum(len(part.events) for part in reading.iter_read(items, opts))
    assert events > 3000
    assert {p.suffix for p in opts.work_dir.iterdir()} == {".piece"}
    for jobs in (1, 2):
        run_timeline([tmp_path / "logs"], tmp_path / f"j{jobs}",
                     TimelineOptions(hash_inputs=False, jobs=jobs), html=False)
    for name in ("events.csv", "timeline.csv", "timeline.jsonl", "updates.csv"):
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes()
    assert (tmp_path / "j2" / "timeline.csv").read_text().count("\n") > events


def test_devices_are_shared_by_forked_processes(tmp_path: Path, monkeypatch) -> None:
    """With --jobs 2 and enough events the devices' lifecycles and compliance are computed in
    forked processes (their pids are seen), and every output is one process's, byte for byte,
    the devices' events included (they stay in the parent and are attached to the results)."""
    from hpforensics.timeline import pipeline

    monkeypatch.setattr(pipeline, "_FORK_EVENTS", 0)
    where: dict[str, int] = {}
    device = pipeline._device

    def _device(name, *args, **kw):  # forked children inherit this patch
        (tmp_path / f"pid-{name}").write_text(str(os.getpid()))
        return device(name, *args, **kw)

    monkeypatch.setattr(pipeline, "_device", _device)
    results = {}
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}"
        results[jobs] = run_timeline([FLEET], out, TimelineOptions(hash_inputs=False, jobs=jobs),
                                     html=False)
        for p in tmp_path.glob("pid-*"):
            where[f"{jobs}:{p.name[4:]}"] = int(p.read_text())
            p.unlink()
    one, two = results[1], results[2]
    assert len(one.devices) >= 5
    assert {where[f"1:{d.device}"] for d in one.devices} == {os.getpid()}
    forked = {where[f"2:{d.device}"] for d in two.devices}
    assert os.getpid() not in forked and 1 <= len(forked) <= 2  # a fast worker may take all
    assert [d.device for d in one.devices] == [d.device for d in two.devices]
    for a, b in zip(one.devices, two.devices):
        assert a.events == b.events and a.summary == b.summary and a.months == b.months
        assert [vars(x) for x in a.lifecycles] == [vars(x) for x in b.lifecycles]
    for p in (tmp_path / "j1").iterdir():
        if p.name != "custody.json":
            assert p.read_bytes() == (tmp_path / "j2" / p.name).read_bytes(), p.name


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("device 3 is broken")
    return x * x


def test_forked_map_keeps_order_and_passes_errors_on() -> None:
    import pytest

    from hpforensics.timeline.forked import map_forked

    items = list(range(9))
    assert map_forked(lambda x: (x, os.getpid()), items, 1, cost=lambda x: x) == \
        [(x, os.getpid()) for x in items]
    got = map_forked(lambda x: (x * x, os.getpid()), items, 3, cost=lambda x: -x)  # forked
    assert [v for v, _ in got] == [x * x for x in items]
    assert os.getpid() not in {pid for _, pid in got}
    with pytest.raises(ValueError, match="device 3 is broken"):
        map_forked(_fails_on_three, items, 2, cost=lambda x: x)
