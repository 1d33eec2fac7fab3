"""One timeline run end to end, as `hpforensics timeline` does: the evtx pipeline's outputs,
then report.html from the same result."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hpforensics import _rowfmt
from hpforensics.timeline.pipeline import TimelineOptions, TimelineResult, build_timeline
from hpforensics.report.html import write_report


def run_timeline(paths: Sequence[str | Path], outdir: Path, opts: TimelineOptions,
                 *, html: bool = True) -> TimelineResult:
    # the run frees and rebuilds text of every size: glibc keeps what is freed for reuse
    # instead of faulting it in again (half the run's page faults; see csrc/rowfmt/module.c)
    _rowfmt.keep_freed_memory()
    result = build_timeline(paths, outdir, opts)
    if html:
        result.outputs["report"] = write_report(outdir / "report.html", result)
    return result
