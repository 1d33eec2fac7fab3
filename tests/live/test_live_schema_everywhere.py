"""One findings schema: a finding from a memory image, from a live scan and from `pe diff` has
the same columns in CSV and the same keys in JSON, and so has a module summary (each run
through the CLI as a user would, on the bundled image, a real process and the sample files)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
PE = SAMPLES / "pe"


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_dump_live_and_pe_diff_write_the_same_columns(target, live_bins, cli, tmp_path):
    dump = tmp_path / "dump"
    cli("dump", "analyze", SAMPLES / "win11-24h2-hotpatch.raw", "--symbols", SAMPLES / "symbols",
        "--reference", PE, "-o", dump, "-q", check=True)
    dump_json = json.loads((dump / "report.json").read_text())

    target.ask(f"l {live_bins['lib']} target_func_v2")  # a redirect: the scan finds it
    live_csv = tmp_path / "live.csv"
    cli("live", "--pid", str(target.pid), "-f", "csv", "-o", live_csv, "-q", check=True)
    live_json = json.loads(cli("live", "--pid", str(target.pid), "-f", "json", "-q",
                               check=True).stdout)

    diff = ["pe", "diff", "--disk", PE / "hpbase.dll", "--memory",
            PE / "mem" / "attacked.hpbase.dll@7ffb12340000.bin", "--base", "0x7ffb12340000"]
    diff_csv = tmp_path / "diff.csv"
    cli(*diff, "-f", "csv", "-o", diff_csv, check=True)
    diff_json = json.loads(cli(*diff, "-f", "json", check=True).stdout)

    findings = {"dump": _header(dump / "findings.csv"), "live": _header(live_csv),
                "pe diff": _header(diff_csv)}
    assert findings["dump"] == findings["live"] == findings["pe diff"], findings
    # each source wrote real rows, and their JSON keys are the CSV's columns, in order
    for name, doc in (("dump", dump_json), ("live", live_json), ("pe diff", diff_json)):
        assert doc["findings"], name
        assert {tuple(f) for f in doc["findings"]} == {tuple(findings["dump"])}, name
    # the columns a source cannot fill are there and empty, not missing
    live_rows = [r for r in _rows(live_csv) if r["verdict"] == "hotpatch"]
    assert live_rows and all(r["kb"] == "" and r["sequence"] == "" for r in live_rows)
    assert {r["pid"] for r in _rows(diff_csv)} == {""}

    modules = {"dump": _header(dump / "modules.csv"),
               "live": _header(live_csv.with_name("live.modules.csv"))}
    assert modules["dump"] == modules["live"]
    assert {"pages_loader", "pages_skipped", "extension_pages"} <= set(modules["dump"])
    for name, doc in (("dump", dump_json), ("live", live_json), ("pe diff", diff_json)):
        assert {tuple(m) for m in doc["modules"]} == {tuple(modules["dump"])}, name
