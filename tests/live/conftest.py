"""Real processes for the live-scanner tests: a small C target compiled here, driven on stdin.

The tests change the target's code themselves (writing /proc/PID/mem, or asking the target to
patch itself); the scanner only reads.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests_live_helpers import Target

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def live_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "the live tests compile their target with gcc"
    out = tmp_path_factory.mktemp("livebins")
    target, lib = out / "hpf_target", out / "libhpfpatch.so"
    subprocess.run([gcc, "-O1", "-g", "-o", str(target), str(HERE / "target.c"), "-ldl"],
                   check=True)
    subprocess.run([gcc, "-O1", "-shared", "-fPIC", "-o", str(lib), str(HERE / "patchlib.c")],
                   check=True)
    return {"target": target, "lib": lib}


@pytest.fixture
def target(live_bins: dict[str, Path]):
    t = Target(live_bins["target"])
    yield t
    t.stop()
