"""`hpforensics dump analyze` over many memory images: one task per dump.

A task runs the single-image analysis (`runs.dump.run_dump`) into `<out>/<dump>/`, so
each dump's findings.csv / modules.csv / hotpatch-images.csv / yara.csv / report.json are what
a single run writes. The worker then puts the three tables into Parquet partitions
(`<out>/parquet/<table>/device=<dump>/`) and returns counts read back from report.json; the
driver appends rows to the roll-ups (`<out>/findings.csv`, ... with a leading `dump` column),
writes `dumps.csv` (one line per dump) and `failures.csv`. Inputs and the output folder must be
on storage the workers share.
"""
from __future__ import annotations

import csv
import json
import logging
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hpforensics.errors import ExitCode, UsageError
from hpforensics.fleet import parquet
from hpforensics.fleet.cluster import (ClusterSpec, Task, TaskFailure, open_client, progress_bar,
                                       run_tasks)
from hpforensics.runs.dump import DumpOptions, run_dump
from hpforensics.timeline.outputs import RowSink

log = logging.getLogger(__name__)

TABLES = ("findings", "modules", "hotpatch-images")
DUMP_COLUMNS = ["dump", "image", "output", "exit", "spaces", "modules", "findings", "loader",
                "hotpatch", "unexplained", "unverified", "unavailable", "hotpatch_images", "yara",
                "warnings"]
FAILURE_COLUMNS = ["task", "kind", "attempts", "error", "detail"]


@dataclass
class DumpSummary:
    dump: str
    image: str
    output: str
    exit: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class FleetDumpResult:
    tasks: int = 0
    dumps: list[DumpSummary] = field(default_factory=list)  # one small record per dump
    failures: list[TaskFailure] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return bool(self.failures) or any(d.exit for d in self.dumps)


def dump_names(images: Sequence[Path]) -> list[str]:
    """Output folder names: the image's file name, made unique in input order."""
    seen: Counter[str] = Counter()
    out = []
    for image in images:
        base = re.sub(r"[^\w.-]", "_", Path(image).name) or "dump"
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def dump_task(image: str, dump: str, outdir: str, args: dict[str, Any]) -> DumpSummary:
    """Analyse one memory image as `dump analyze IMAGE -o <out>/<dump>` does (on a worker)."""

    target = Path(outdir) / dump
    if target.exists():  # a retry after a worker died half-way
        shutil.rmtree(target)
    run = run_dump(Path(image), target, DumpOptions(**args))
    code = int(ExitCode.PARTIAL) if run.damaged else 0
    doc = json.loads((target / "report.json").read_text(encoding="utf-8"))
    verdicts = Counter(f.get("verdict") for f in doc.get("findings", []))
    counts = {"spaces": len(doc.get("processes", [])), "modules": len(doc.get("modules", [])),
              "findings": len(doc.get("findings", [])),
              **{v: verdicts.get(v, 0) for v in ("loader", "hotpatch", "unexplained", "unverified",
                                                    "unavailable")},
              "hotpatch_images": len(doc.get("hotpatch_images", [])),
              "yara": len(doc.get("yara", []))}
    for table in TABLES:
        _csv_to_parquet(target / f"{table}.csv", Path(outdir) / ".fleet-parquet" / dump, table,
                        dump)
    return DumpSummary(dump, image, str(target), code, counts, list(doc.get("warnings", [])))


def _csv_to_parquet(path: Path, root: Path, table: str, dump: str) -> None:
    """One dump's CSV table as a Parquet partition (text columns: the CSV is the contract)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            return
        rows = list(reader)
    types = {c: parquet.STRING for c in header}
    parquet.write_partition(root, table, dump, types,
                            {c: [r[i] for r in rows] for i, c in enumerate(header)}, "0")


def analyze_dumps(images: Sequence[Path], outdir: Path, args: dict[str, Any], spec: ClusterSpec,
                  *, show_progress: bool = True, client: Any = None) -> FleetDumpResult:
    """Every image analysed once, each in its own task; roll-ups written as tasks finish."""

    for image in images:
        if not Path(image).is_file():
            raise UsageError(f"{image}: no such file")
    outdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(outdir / "parquet", ignore_errors=True)
    names = dump_names(images)
    result = FleetDumpResult(tasks=len(images))
    dumps_out = RowSink(outdir, "dumps", DUMP_COLUMNS)
    failures_out = RowSink(outdir, "failures", FAILURE_COLUMNS)
    rollups: dict[str, Any] = {}

    def add(task: Task, got: DumpSummary) -> None:
        result.dumps.append(got)
        dumps_out.write({"dump": got.dump, "image": got.image, "output": got.output,
                         "exit": got.exit, **got.counts, "warnings": " | ".join(got.warnings)})
        for table in TABLES:
            _append_rows(Path(got.output) / f"{table}.csv", got.dump, outdir, table, rollups)
        staged = outdir / ".fleet-parquet" / got.dump
        for file in staged.rglob("*.parquet") if staged.is_dir() else []:
            target = outdir / "parquet" / file.relative_to(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            file.replace(target)
        shutil.rmtree(staged, ignore_errors=True)

    def fail(task: Task, failure: TaskFailure) -> None:
        result.failures.append(failure)
        failures_out.write({"task": failure.key, "kind": failure.kind, "attempts": failure.attempts,
                            "error": failure.error, "detail": failure.detail})

    tasks = (Task(str(image), dump_task, (str(image), name, str(outdir), args))
             for image, name in zip(images, names))
    try:
        with progress_bar("dumps", len(images), show_progress) as progress:
            if client is not None:
                run_tasks(client, tasks, len(images), add, fail, progress)
            else:
                with open_client(spec) as own:
                    run_tasks(own, tasks, len(images), add, fail, progress)
    finally:
        for sink in (dumps_out, failures_out):
            sink.close()
        for fh, _ in rollups.values():
            fh.close()
        shutil.rmtree(outdir / ".fleet-parquet", ignore_errors=True)
    return result


def _append_rows(piece: Path, dump: str, outdir: Path, table: str, rollups: dict) -> None:
    """Rows of one dump's table into `<out>/<table>.csv` with the dump's name in front."""
    if not piece.exists():
        return
    with open(piece, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        if table not in rollups:
            out = open(outdir / f"{table}.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["dump", *header])
            rollups[table] = (out, writer)
        _, writer = rollups[table]
        writer.writerows([dump, *row] for row in reader)
