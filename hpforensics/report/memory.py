"""Write a memory-image analysis: tables to the terminal, CSV and JSON files. No analysis here.

Findings and module summaries are the shared result records (hpforensics.model) rendered by
hpforensics.report, so the same readers serve the live scanner's and this output.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from hpforensics.memimage.analyze import Analysis
from hpforensics.report import schema
from hpforensics.report.render import render, render_to
from hpforensics.cells import to_row
from hpforensics.textsafe import clean


def document(analysis: Analysis, inputs: dict, custody: dict | None = None) -> dict:
    # every value through to_row: paths and names (the image's, the processes') may hold
    # bytes that are not UTF-8, shown escaped as in the CSV files and on the console
    return {
        "inputs": to_row(inputs),
        **({"custody": custody} if custody is not None else {}),
        "hotpatch_images": [to_row(r) for r in analysis.hotpatch_images],
        "findings": [to_row(f) for f in analysis.findings],
        "modules": [to_row(m) for m in analysis.modules],
        "processes": [to_row({"pid": s.record.pid, "process": s.record.name,
                              "images": len(s.record.images),
                              "images_not_in_loader_list": [i.path for i in s.record.images
                                                            if not i.in_loader_list],
                              "peb_images_hotpatched": s.record.images_hotpatched})
                      for s in analysis.spaces],
        "yara": [to_row(y) for y in analysis.yara],
        "warnings": [clean(w) for w in analysis.warnings],
    }


def write_outputs(analysis: Analysis, outdir: Path, inputs: dict,
                  custody: dict | None = None) -> list[Path]:
    """findings.csv, modules.csv, hotpatch-images.csv and report.json in `outdir`."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, records, columns in (
        ("findings.csv", analysis.findings, schema.FINDING),
        ("modules.csv", analysis.modules, schema.MODULE),
        ("hotpatch-images.csv", analysis.hotpatch_images, schema.HOTPATCH_IMAGE),
        ("yara.csv", analysis.yara, schema.YARA),
    ):
        render_to(outdir / name, records, "csv", columns=columns)
        written.append(outdir / name)
    path = outdir / "report.json"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        json.dump(document(analysis, inputs, custody), fh, indent=2, default=str)
        fh.write("\n")
    written.append(path)
    return written


def _leaf(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1] if path else ""


def print_tables(analysis: Analysis, out: IO[str]) -> None:
    """Terminal summary: narrow tables; the CSV/JSON files carry every column."""
    images = [{"pid": r.pid, "process": r.process, "base": r.base_module,
               "patch image": _leaf(r.patch_path), "seq": r.sequence,
               "functions": f"{r.functions_patched}/{r.functions_total}", "kb": r.kb,
               "loader": r.loader_state, "status": r.status, "flag": "!" if r.flagged else ""}
              for r in analysis.hotpatch_images]
    render(images, "table", out, title="Hotpatch images (loader records checked against code)")
    changed = [{"pid": f.pid, "process": f.process, "module": f.module, "rva": f"{f.rva:#x}",
                "size": f.size, "verdict": f.verdict.value, "patch": _leaf(f.patch_image),
                "reason": f.reason}
               for f in analysis.findings if f.verdict.value != "loader"]
    render(changed, "table", out, title="Changed code and data (hotpatch / unverified / "
                                        "unexplained / unavailable)")
    if analysis.yara:
        hits = [{"pid": y.pid, "module": y.module, "address": f"{y.address:#x}",
                 "rule": f"{y.namespace}.{y.rule}", "verdict": y.verdict} for y in analysis.yara]
        render(hits, "table", out, title="YARA on changed ranges")
    counts: dict[str, int] = {}
    for f in analysis.findings:
        counts[f.verdict.value] = counts.get(f.verdict.value, 0) + 1
    checked = [m for m in analysis.modules if m.status != "no-reference"]
    out.write(f"{len(analysis.spaces)} address spaces, {len(analysis.modules)} modules "
              f"({len(checked)} with a reference), findings: "
              + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none") + "\n")
    extended = [m for m in analysis.modules if m.extension_pages]
    if extended:
        out.write(f"hotpatch extension pages: {len(extended)} modules, "
                  f"{sum(m.extension_pages for m in extended)} pages, "
                  f"{sum(m.hpat_stubs_used for m in extended)} HPAT stubs in use, "
                  f"{sum(1 for m in extended if m.extension_unexplained)} modules with "
                  "unexplained bytes there\n")
