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


def driver_sources() -> list[str]:
    """The driver and every core file except the Python binding."""
    return [str(CORE / "tests" / "test_core.c")] + sorted(
        str(p) for p in CORE.glob("*.c") if p.name != "module.c")


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is needed to build the extension and this test"
    return cc


@pytest.mark.parametrize("sanitizers", ["address,undefined", "thread"])
def test_core_driver_under_sanitizers(tmp_path, sanitizers):
    exe = tmp_path / "pagehash_test"
    sources = driver_sources()
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


ARM64_CC = os.environ.get("ARM64_CC", "aarch64-linux-gnu-gcc")


@pytest.mark.skipif(not (shutil.which(ARM64_CC) and shutil.which("qemu-aarch64")),
                    reason="needs an aarch64 cross compiler and qemu-aarch64 (make arm64-check)")
def test_core_driver_on_arm64_neon(tmp_path):
    """The NEON XXH3 body, cross-built and run under qemu: published vectors and every length
    against the portable body (the driver reports neon=1 and runs it)."""
    exe = tmp_path / "pagehash_test_arm64"
    sources = driver_sources()
    build = subprocess.run([ARM64_CC, "-std=c11", "-O2", "-static", "-pthread", "-Wall", "-Wextra",
                            "-Werror", "-o", str(exe), *sources], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run(["qemu-aarch64", str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "neon=1" in run.stdout and " 0 failures" in run.stdout
