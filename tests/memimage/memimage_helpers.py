"""Paths and runners shared by the memory-image tests (imported by name: unique, not to clash)."""
from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
IMAGE = SAMPLES / "win11-24h2-hotpatch.raw"
SYMBOLS = SAMPLES / "symbols"
PLAN = SAMPLES / "memimage-plan.json"
VOL = Path(sys.executable).with_name("vol")


# Volatility's identifier cache is per user, and a run with other -s directories evicts our
# table; on a miss `vol` tries to download the PDB and truncates, then deletes, the ISF in the
# first symbol directory. So the CLI runs get a private cache and a private copy of the symbols.
_PRIVATE = Path(tempfile.mkdtemp(prefix="hpf-memimage-vol-"))
VOL_SYMBOLS = _PRIVATE / "symbols"
shutil.copytree(SYMBOLS, VOL_SYMBOLS)
(_PRIVATE / "cache").mkdir()
atexit.register(shutil.rmtree, _PRIVATE, True)


def run_vol(*args: str, renderer: str = "json") -> subprocess.CompletedProcess[str]:
    """`vol` exactly as a user runs it: the installed console script, our plugin folder."""
    cmd = [str(VOL), "-q", "--offline", "--cache-path", str(_PRIVATE / "cache"), "-r", renderer,
           "-f", str(IMAGE), "-s", str(VOL_SYMBOLS), "-p", str(REPO / "plugins"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


def vol_json(*args: str) -> list[dict]:
    proc = run_vol(*args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def leaf(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1] if path else ""
