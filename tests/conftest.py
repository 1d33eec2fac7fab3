"""Shared test fixtures: where the real evidence lives, and how to run the CLI as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Real files no one on the team wrote: ../shared/data beside the checkout (CI lays it there too).
SHARED_DATA = Path(os.environ.get("HPF_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"shared data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_pe_files(shared_data: Path) -> list[Path]:
    """The Microsoft-built DLLs plus pip's distlib launchers from this venv."""
    files = sorted((shared_data / "pe").glob("*.dll"))
    import pip._vendor.distlib as distlib

    launchers = Path(distlib.__file__).parent
    files += [launchers / n for n in ("t64.exe", "w64.exe") if (launchers / n).exists()]
    assert len(files) >= 4
    return files


def run_cli(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess[str]:
    """Run `hpforensics ...` in a subprocess, exactly as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "hpforensics", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=kw.pop("cwd", REPO),
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def cli():
    return run_cli
