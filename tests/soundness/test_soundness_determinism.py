"""Reports are deterministic: the same inputs give byte-identical CSV and JSON (and the custody
block) across runs and across thread / process counts."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in (".csv", ".json", ".jsonl")}


def _same(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert fa and sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name] == fb[name], f"{name} differs between runs"


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_hash_same_bytes_across_runs_and_threads(cli, tmp_path, fmt):
    files = [SAMPLES / "win11-24h2-hotpatch.raw", SAMPLES / "pe" / "hpbase.dll"]
    for i, threads in enumerate(("1", "2", "2")):
        out = tmp_path / str(i)
        out.mkdir()
        cli("hash", "-q", "-a", "sha256", "-j", threads, "-f", fmt, "-o", out / f"h.{fmt}", *files,
            check=True)
    _same(tmp_path / "0", tmp_path / "1")
    _same(tmp_path / "1", tmp_path / "2")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_pe_diff_same_bytes(cli, tmp_path, fmt):
    mem = SAMPLES / "pe" / "mem"
    for i in range(2):
        out = tmp_path / str(i)
        out.mkdir()
        cli("pe", "diff", "--disk", SAMPLES / "pe" / "hpbase.dll",
            "--memory", mem / "attacked.hpbase.dll@7ffb12340000.bin", "--base", "0x7ffb12340000",
            "--patch", f"{SAMPLES / 'pe' / 'forged_hp.dll'}@0x7ffb12500000",
            "--region", mem / "attacked.hpat@7ffb12346000.bin", "-f", fmt, "-o", out / f"d.{fmt}",
            check=True)
    _same(tmp_path / "0", tmp_path / "1")


def test_timeline_same_bytes_across_runs_and_jobs(cli, tmp_path):
    logs = SAMPLES / "evtx"
    for i, jobs in enumerate(("1", "2", "2")):
        proc = cli("timeline", logs, "-o", tmp_path / str(i), "-j", jobs, "--no-html")
        assert proc.returncode in (0, 3), proc.stderr
    _same(tmp_path / "0", tmp_path / "1")
    _same(tmp_path / "1", tmp_path / "2")


def test_dump_analyze_same_bytes(cli, tmp_path):
    for i in range(2):
        cli("dump", "analyze", SAMPLES / "win11-24h2-hotpatch.raw", "-s", SAMPLES / "symbols",
            "--reference", SAMPLES / "pe", "--manifest", SAMPLES / "memimage-kb.json",
            "-o", tmp_path / str(i), "-q", check=True, timeout=300)
    _same(tmp_path / "0", tmp_path / "1")
