"""Damaged KB sources through `hpforensics manifest import` and damaged manifests through
`dump analyze --manifest`: one line, exit 2 (nothing usable) or 3 (bad rows skipped and listed),
never a traceback; regressions for the fuzzer's finds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from corrupt_checks import check_clean_failure

from corrupt_corpus import SAMPLES

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
GOOD_CSV = SAMPLES / "kb" / "KB5052105-file-information.csv"


def test_regression_csv_with_bytes_cp1252_leaves_undefined(cli, tmp_path):
    """Fuzzer find: a CSV neither UTF-8 nor cp1252 (byte 0x9d) raised UnicodeDecodeError."""
    src = tmp_path / "KB5052105.csv"
    src.write_bytes((REGRESSIONS / "kb-csv-undefined-cp1252.bin").read_bytes()[1:])
    proc = cli("manifest", "import", src, "-o", tmp_path / "m.json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 3, proc.stderr  # its rows are broken: each listed, none kept
    skipped = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"skipped {src}:")]
    assert len(skipped) == json.loads((tmp_path / "m.json").read_text())["skipped"].__len__() == 5


def test_regression_xml_declaring_unknown_encoding(cli, tmp_path):
    """Fuzzer find: <?xml encoding="UTF-4"?> raised LookupError out of the .mum importer."""
    src = tmp_path / "update.mum"
    src.write_bytes((REGRESSIONS / "kb-mum-unknown-encoding.bin").read_bytes()[1:])
    proc = cli("manifest", "import", src, "--kb", "KB5052105", "-o", tmp_path / "m.json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 3, proc.stderr
    assert "UTF-4" in proc.stderr and src.name in proc.stderr


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage\x00" * 50, b"\x00" * 100000])
def test_csv_without_usable_rows(cli, tmp_path, content):
    src = tmp_path / "KB5052105.csv"
    src.write_bytes(content)
    proc = cli("manifest", "import", src, "-o", tmp_path / "m.json", timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (2, 3), proc.stderr
    assert src.name in proc.stderr


def test_csv_cut_mid_row_keeps_earlier_rows(cli, tmp_path):
    text = GOOD_CSV.read_bytes()
    src = tmp_path / "KB5052105.csv"
    src.write_bytes(text[: len(text) * 2 // 3])
    proc = cli("manifest", "import", src, "-o", tmp_path / "m.json")
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 3), proc.stderr
    whole = tmp_path / "whole.json"
    cli("manifest", "import", GOOD_CSV, "-o", whole, check=True)
    kept = json.loads((tmp_path / "m.json").read_text())["files"]
    assert 0 < len(kept) < len(json.loads(whole.read_text())["files"])


@pytest.mark.parametrize("doc", [
    b'{"format": "hpforensics-kb-manifest", "files": [', b"\xff\xfe{not utf-8",
    b'{"format": "hpforensics-kb-manifest", "version": 1, "files": 7}'])
def test_dump_analyze_with_corrupt_manifest(cli, tmp_path, doc):
    """The last two were tracebacks (UnicodeDecodeError) or silently accepted before."""
    bad = tmp_path / "bad-manifest.json"
    bad.write_bytes(doc)
    proc = cli("dump", "analyze", SAMPLES / "win11-24h2-hotpatch.raw", "-s", SAMPLES / "symbols",
               "--manifest", bad, "-o", tmp_path / "out", "-q", timeout=300)
    check_clean_failure(proc, bad, need_offset=False)
