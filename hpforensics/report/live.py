"""Write a live scan: findings, then a summary per module and per process. No analysis here.

Findings and module summaries are the same records the memory-image path writes, rendered by
hpforensics.report, so one reader serves both.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO

from hpforensics.model import Verdict
from hpforensics.report import schema
from hpforensics.report.render import render
from hpforensics.cells import to_row
from hpforensics.live.space import LiveScanResult

_CSV = {"modules": schema.MODULE, "processes": schema.PROCESS}


def as_document(result: LiveScanResult, inputs: dict | None = None) -> dict:
    """The same top-level keys as the memory-image report.json where they mean the same."""
    return {
        **({"inputs": inputs} if inputs is not None else {}),
        "findings": [to_row(f) for f in result.findings],
        "modules": [to_row(m) for m in result.modules],
        "processes": [to_row(p) for p in result.processes],
        "yara": [to_row(y) for y in result.yara],
        "os_patches": [to_row(r) for r in result.os_patches],
        "kernel_modules": list(result.kernel_modules),
        "warnings": list(result.warnings),
    }


def write_report(result: LiveScanResult, fmt: str, out: IO[str], path: Path | None = None,
                 inputs: dict | None = None) -> None:
    """table/json/jsonl to `out`; csv writes findings to `out` and the summaries beside `path`
    (OUT.modules.csv, OUT.processes.csv), or after a blank line when writing to stdout."""
    if fmt == "json":
        json.dump(as_document(result, inputs), out, indent=2, default=str)
        out.write("\n")
        return
    if fmt == "jsonl":
        for kind, rows in as_document(result, inputs).items():
            if kind == "inputs":
                out.write(json.dumps({"record": kind, **rows}, default=str) + "\n")
                continue
            for row in rows:
                out.write(json.dumps({"record": kind, **row} if isinstance(row, dict)
                                     else {"record": kind, "value": row}, default=str) + "\n")
        return
    if fmt == "csv":
        render(result.findings, "csv", out, columns=schema.FINDING)
        for kind, records in (("modules", result.modules), ("processes", result.processes)):
            if path is not None:
                with open(path.with_name(f"{path.stem}.{kind}.csv"), "w", encoding="utf-8",
                          newline="") as fh:
                    render(records, "csv", fh, columns=_CSV[kind])
            else:
                out.write("\n")
                render(records, "csv", out, columns=_CSV[kind])
        return
    shown = [f for f in result.findings if f.verdict is not Verdict.UNAVAILABLE]
    render(shown, "table", out, columns=schema.FINDING_TABLE, title=f"Differences ({len(shown)})")
    changed = [m for m in result.modules
               if m.pages_unexplained or m.pages_hotpatched or m.pages_unavailable
               or m.pages_unverified or (m.status != "ok" and not m.status.startswith("skipped"))]
    render(changed, "table", out,
           columns=[*schema.MODULE_TABLE[:-1], *schema.EXTENSION_TABLE, "status"],
           title=f"Modules with differences or without reference ({len(changed)} of "
                 f"{len(result.modules)})")
    render(result.processes, "table", out, columns=schema.PROCESS_TABLE,
           title=f"Processes ({len(result.processes)})")
    if result.yara:
        render(result.yara, "table", out, columns=schema.YARA_TABLE,
               title=f"YARA hits in changed code ({len(result.yara)})")
    if result.os_patches:
        render(result.os_patches, "table", out,
               title="What the OS records about hotpatches (beside what the bytes show)")
    for w in result.warnings:
        out.write(f"warning: {w}\n")
    if result.kernel_modules:
        out.write(f"{len(result.kernel_modules)} kernel modules loaded: out of reach of a "
                  "user-mode scan (use a memory image)\n")


def render_text(result: LiveScanResult, fmt: str) -> str:
    buf = io.StringIO()
    write_report(result, fmt, buf)
    return buf.getvalue()
