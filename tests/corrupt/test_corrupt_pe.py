"""Damaged PE files through the CLI: `pe info`, `pe diff`, `hash`, `store build`, `manifest
import` (folder) and `yara`. One line naming file and offset, exit 2 (or 3 when some input was
good), never a traceback, and every intact input still reported."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from corrupt_checks import check_clean_failure

from corrupt_corpus import PE_CASES, SAMPLES

MEM = SAMPLES / "pe" / "mem" / "clean.hpbase.dll@7ffb12340000.bin"


@pytest.mark.parametrize("case", sorted(PE_CASES))
def test_pe_info_one_line_error(cli, corpus, case):
    path = corpus / f"{case}.dll"
    proc = cli("pe", "info", "-f", "json", path)
    if case == "pe_size_of_image_huge":  # metadata is readable; the engine refuses it (below)
        assert proc.returncode == 0, proc.stderr
        return
    check_clean_failure(proc, path)


def test_pe_info_keeps_good_files(cli, corpus):
    bad = [corpus / f"{c}.dll" for c in ("pe_empty", "pe_reloc_block_zero", "pe_hotpatch_selfref")]
    good = SAMPLES / "pe" / "hpbase_hp1.dll"
    proc = cli("pe", "info", "-f", "json", bad[0], good, *bad[1:])
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 3, proc.stderr
    assert [Path(i["file"]).name for i in json.loads(proc.stdout)] == [good.name]
    for b in bad:
        check_clean_failure(proc, b, codes=(3,), need_offset=True)


@pytest.mark.parametrize("case", ["pe_empty", "pe_section_outside", "pe_reloc_block_zero",
                                  "pe_reloc_block_huge", "pe_size_of_image_huge",
                                  "pe_nsections_huge", "pe_lfanew_outside", "pe_reloc_outside"])
def test_pe_diff_corrupt_disk_file(cli, corpus, case):
    path = corpus / f"{case}.dll"
    proc = cli("pe", "diff", "--disk", path, "--memory", MEM, "--base", "0x7ffb12340000",
               "-f", "json", timeout=120)
    check_clean_failure(proc, path)


def test_pe_diff_memory_cut_short(cli, tmp_path):
    mem = tmp_path / "cut.bin"
    mem.write_bytes(MEM.read_bytes()[:0x3000])
    proc = cli("pe", "diff", "--disk", SAMPLES / "pe" / "hpbase.dll", "--memory", mem,
               "--base", "0x7ffb12340000")
    check_clean_failure(proc, mem)


def test_hash_reports_every_page_of_corrupt_files(cli, corpus):
    files = sorted(corpus.glob("pe_*.dll"))
    proc = cli("hash", "-f", "json", "-q", *files)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    rows = json.loads(proc.stdout)
    for f in files:
        pages = [r for r in rows if r["file"] == str(f)]
        assert len(pages) == (f.stat().st_size + 4095) // 4096, f


def test_store_build_skips_corrupt_keeps_good(cli, corpus, tmp_path):
    src = tmp_path / "bins"
    src.mkdir()
    for c in ("pe_empty", "pe_section_outside", "pe_reloc_block_zero", "pe_lfanew_outside"):
        shutil.copy(corpus / f"{c}.dll", src)
    shutil.copy(SAMPLES / "pe" / "hpbase.dll", src)
    shutil.copy(SAMPLES / "pe" / "hpbase_hp1.dll", src)
    proc = cli("store", "build", src, "--db", tmp_path / "s.db", "-j", "1", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 3), proc.stderr
    assert "2 image version(s) added" in proc.stdout, proc.stdout
    for c in ("pe_empty", "pe_section_outside", "pe_lfanew_outside"):
        assert any(c in ln for ln in proc.stderr.splitlines()
                   if ln.startswith("skipped")), proc.stderr


def test_manifest_import_folder_with_corrupt_binaries(cli, corpus, tmp_path):
    src = tmp_path / "KB5052105"
    src.mkdir()
    for c in ("pe_empty", "pe_section_outside", "pe_million_relocs"):
        shutil.copy(corpus / f"{c}.dll", src)
    shutil.copy(SAMPLES / "pe" / "hpbase.dll", src)
    out = tmp_path / "m.json"
    proc = cli("manifest", "import", src, "--kb", "KB5052105", "-o", out, "-j", "1", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 3), proc.stderr
    doc = json.loads(out.read_text())
    assert "hpbase.dll" in {f["name"] for f in doc["files"]}


def test_yara_over_corrupt_files(cli, corpus, tmp_path):
    rule = tmp_path / "mz.yar"
    rule.write_text('rule mz { strings: $a = "MZ" condition: $a at 0 }\n')
    files = sorted(corpus.glob("pe_*.dll"))
    proc = cli("yara", rule, *files, "-f", "json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    hits = {h["source"].rsplit("/", 1)[-1] for h in json.loads(proc.stdout)}
    assert hits == {f.name for f in files if f.read_bytes()[:2] == b"MZ"}


def test_yara_bad_rules_one_line(cli, tmp_path):
    rule = tmp_path / "bad.yar"
    rule.write_text("rule broken { condition: \n")
    proc = cli("yara", rule, SAMPLES / "pe" / "hpbase.dll")
    check_clean_failure(proc, rule, need_offset=False)
