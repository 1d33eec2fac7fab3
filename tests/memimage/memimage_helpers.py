"""Paths and runners shared by the memory-image tests (imported by name, unique to avoid clashes)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
IMAGE = SAMPLES / "win11-24h2-hotpatch.raw"
SYMBOLS = SAMPLES / "symbols"
PLAN = SAMPLES / "memimage-plan.json"
VOL = Path(sys.executable).with_name("vol")


def run_vol(*args: str, renderer: str = "json") -> subprocess.CompletedProcess[str]:
    """`vol` exactly as a user runs it: the installed console script, our plugin folder."""
    cmd = [str(VOL), "-q", "-r", renderer, "-f", str(IMAGE), "-s", str(SYMBOLS), "-p",
           str(REPO / "plugins"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


def vol_json(*args: str) -> list[dict]:
    proc = run_vol(*args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def leaf(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1] if path else ""
