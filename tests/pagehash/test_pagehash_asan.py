"""Build the C core's self-checking driver with AddressSanitizer + UBSan (and, separately, with
ThreadSanitizer) and run it.

The driver (csrc/pagehash/tests/test_core.c) checks published vectors, every SIMD path against
the portable one, per-page hashing, masks, threads and comparison on exactly-sized buffers, so
any overread, use-after-free or undefined arithmetic aborts it; ThreadSanitizer checks that the
worker threads never touch each other's output.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "csrc" / "pagehash"


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is needed to build the extension and this test"
    return cc


@pytest.mark.parametrize("sanitizers", ["address,undefined", "thread"])
def test_core_driver_under_sanitizers(tmp_path, sanitizers):
    exe = tmp_path / "pagehash_test"
    sources = [str(CORE / "tests" / "test_core.c")] + sorted(
        str(p) for p in CORE.glob("*.c") if p.name != "module.c"
    )
    build = subprocess.run(
        [compiler(), "-std=c11", "-O1", "-g", f"-fsanitize={sanitizers}",
         "-fno-sanitize-recover=all", "-pthread", "-Wall", "-Wextra", "-Werror",
         "-o", str(exe), *sources],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1",
               TSAN_OPTIONS="halt_on_error=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 failures" in run.stdout
    checks = int(run.stdout.split(" checks")[0].split()[-1])
    assert checks > 30_000
