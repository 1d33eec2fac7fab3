"""The library path and `hpforensics dump analyze` on the sample image; error handling."""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys

from memimage_helpers import IMAGE, PLAN, REPO, SAMPLES, SYMBOLS, leaf


def test_library_findings_match_the_plan(library_analysis, expected_findings):
    got = {(f.pid, f.module, f.rva, f.size, f.verdict.value) for f in library_analysis.findings}
    assert got == expected_findings


def test_library_images_and_unlisted_module(library_analysis, expected_images):
    got = {(r.pid, r.base_module, leaf(r.patch_path), r.status, r.flagged, r.functions_patched,
            r.functions_total) for r in library_analysis.hotpatch_images}
    assert got == expected_images
    rundll = next(s for s in library_analysis.spaces if s.record.pid == 4404)
    hidden = [i for i in rundll.record.images if i.name == "hpbase.dll"]
    assert len(hidden) == 1 and not hidden[0].in_loader_list


def test_dump_analyze_writes_csv_and_json(cli, tmp_path, expected_findings):
    out = tmp_path / "out"
    proc = cli("dump", "analyze", str(IMAGE), "--symbols", str(SYMBOLS), "--reference",
               str(SAMPLES / "pe"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Hotpatch images" in proc.stdout and "unexplained" in proc.stdout
    doc = json.loads((out / "report.json").read_text())
    got = {(f["pid"], f["module"], int(f["rva"], 16), f["size"], f["verdict"])
           for f in doc["findings"]}
    assert got == expected_findings
    unlisted = {p["pid"]: p["images_not_in_loader_list"] for p in doc["processes"]}
    assert unlisted[4404] == ["\\Windows\\System32\\hpbase.dll"]
    rows = list(csv.DictReader((out / "findings.csv").open(encoding="utf-8")))
    # every field of a finding, the JSON's keys in the same order (one schema)
    assert list(rows[0]) == list(doc["findings"][0]) and "sequence" in rows[0]
    assert {(r["pid"], r["module"], r["rva"], r["verdict"]) for r in rows} == {
        ("" if f["pid"] is None else str(f["pid"]), f["module"], f["rva"], f["verdict"])
        for f in doc["findings"]}


def test_truncated_image_is_one_line_exit_2(cli, tmp_path):
    cut = tmp_path / "cut.raw"
    cut.write_bytes(IMAGE.read_bytes()[: 4 << 20])
    proc = cli("dump", "analyze", str(cut), "--symbols", str(SYMBOLS), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"hpforensics: error: {cut}: truncated image")
    assert "Traceback" not in proc.stderr


def test_missing_symbols_names_the_pdb(cli, tmp_path, plan):
    empty = tmp_path / "symbols"
    empty.mkdir()
    proc = cli("dump", "analyze", str(IMAGE), "--symbols", str(empty), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    guid = plan["image"]["pdb"]["guid"]
    assert line.count("\n") == 0 and f"ntkrnlmp.pdb/{guid}-1.json.xz" in line


def test_generator_is_deterministic(tmp_path):
    out = tmp_path / "again.raw"
    proc = subprocess.run([sys.executable, str(SAMPLES / "build_memimage.py"), "-o", str(out),
                           "--symbols", str(tmp_path / "sym"), "--plan", str(tmp_path / "p.json")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(out) == digest(IMAGE)
    isf = next((tmp_path / "sym").rglob("*.json.xz"))
    assert digest(isf) == digest(next(SYMBOLS.rglob("*.json.xz")))
    new = json.loads((tmp_path / "p.json").read_text())
    old = json.loads(PLAN.read_text())
    new.pop("image"), old.pop("image")
    assert new == old


def test_raw_walk_equals_the_object_model_walk(library_analysis):
    """The fast VAD/loader walk (raw reads, ISF offsets) and Volatility's objects agree."""
    from volatility3.plugins.windows import pslist

    from hpforensics.memimage import walk
    from hpforensics.memimage.fastwalk import FastWalker
    from hpforensics.memimage.session import open_image

    session = open_image(IMAGE, [SYMBOLS])
    fast = FastWalker.create(session.context, session.kernel)
    assert fast is not None
    compared = 0
    for proc in pslist.PsList.list_processes(session.context, session.kernel):
        if proc.UniqueProcessId == 4:
            continue
        assert fast.vad_images(proc) == sorted(walk.vad_images(proc))
        assert walk.process_images(proc, fast) == walk.process_images(proc, None)
        compared += 1
    assert compared == 12


def test_zeroed_pages_are_named_as_lost_not_as_unknown_format(cli, tmp_path):
    holes = bytearray(IMAGE.read_bytes())
    holes[3 << 20 : 4 << 20] = bytes(1 << 20)  # a MiB lost in acquisition, page tables with it
    bad = tmp_path / "holes.raw"
    bad.write_bytes(holes)
    proc = cli("dump", "analyze", str(bad), "--symbols", str(SYMBOLS), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and "does not translate" in line and "lost pages" in line
