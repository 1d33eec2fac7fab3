"""--yara and --yara-all on the sample memory image, through the CLI as a user runs it."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "samples" / "win11-24h2-hotpatch.raw"
PLAN = json.loads((REPO / "samples" / "memimage-plan.json").read_text())


@pytest.fixture(scope="module")
def symbols(tmp_path_factory) -> Path:
    # a private copy: Volatility's shared symbol cache may evict (and delete) entries
    dst = tmp_path_factory.mktemp("symbols") / "symbols"
    shutil.copytree(REPO / "samples" / "symbols", dst)
    return dst


def _analyze(cli, symbols: Path, out: Path, *extra: str) -> list[dict[str, str]]:
    proc = cli("dump", "analyze", IMAGE, "-s", symbols, "--reference", REPO / "samples" / "pe",
               "-q", "-o", out, *(extra or ("--yara", REPO / "rules")),
               env={**__import__("os").environ, "HPF_CACHE_DIR": str(out / "cache")})
    assert proc.returncode == 0, proc.stderr
    with open(out / "yara.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_yara_on_changed_ranges_carries_each_range_verdict(cli, symbols, tmp_path):
    hits = _analyze(cli, symbols, tmp_path / "changed")
    redirects = {(h["pid"], h["address"]) for h in hits if h["rule"] == "hotpatch_redirect_e9_ebf9"}
    # every genuine redirect the plan planted in a user process is a hit, with verdict hotpatch
    findings = list(csv.DictReader(open(tmp_path / "changed" / "findings.csv", encoding="utf-8")))
    genuine = {(f["pid"], f["address"]) for f in findings
               if f["verdict"] == "hotpatch" and "redirect" in f["reason"]}
    assert genuine and genuine <= redirects
    for h in hits:
        if (h["pid"], h["address"]) in genuine:
            assert h["verdict"] == "hotpatch"
    # the attacker's imitation of the EB F9 form and the redirect into a forged patch image
    # match the same shape — and keep their own verdict, unexplained
    planted = {(str(f["pid"]), f["address"]) for f in PLAN["expected_findings"]
               if f["kind"] in ("fake_hotpatch_redirect", "hotpatch_redirect")
               and f["verdict"] == "unexplained"}
    assert len(planted) == 2
    got = {(h["pid"], h["address"]) for h in hits
           if h["rule"] == "hotpatch_redirect_e9_ebf9" and h["verdict"] == "unexplained"}
    assert got == planted


def test_yara_all_scans_whole_images(cli, symbols, tmp_path):
    # a rule for bytes no one changed: the PE header of every mapped image
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "headers.yar").write_text(
        'rule pe_header { strings: $mz = { 4D 5A } condition: $mz at 0 }\n')
    changed = _analyze(cli, symbols, tmp_path / "changed", "--yara", rules)
    everything = _analyze(cli, symbols, tmp_path / "all", "--yara", rules, "--yara-all")
    assert [h for h in changed if h["rule"] == "pe_header"] == []
    headers = {(h["pid"], h["module"]) for h in everything if h["rule"] == "pe_header"}
    # every process's hpbase.dll (loader-listed or only in the VADs) and the kernel's driver
    sample_pids = {str(p["pid"]) for p in PLAN["processes"]
                   if p.get("scenario") not in (None, "none", "kernel")}
    assert {pid for pid, module in headers if module == "hpbase.dll"} == sample_pids
    assert ("", "hpkern.sys") in headers
    assert all(h["verdict"] == "" for h in everything)  # not tied to a changed range
