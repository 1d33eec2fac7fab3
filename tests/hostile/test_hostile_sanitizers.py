"""The three C extensions (csrc/rowfmt, which renders text an attacker wrote; csrc/evtxscan;
csrc/pagehash), bindings (module.c) included, built with AddressSanitizer + UBSan and run
through the tests that drive them hardest: the row renderers against the Python ones on
real logs and hostile cells, the timeline written at the end of a run, the record selector
on real and mutated chunks, page hashing on every implementation. Python is not
instrumented; the extensions are, and PYTHONMALLOC=malloc puts Python's objects on the heap
ASan watches. A canary (a deliberate heap overflow built the same way) proves the set-up
reports what it should."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-std=c11", "-Wall", "-Wextra", "-pthread"]
SOURCES = {"_pagehash": "pagehash", "_evtxscan": "evtxscan", "_rowfmt": "rowfmt"}
GROUPS = {  # pytest runs apart: tests/pagehash imports its own conftest by name
    "rowfmt, evtxscan": ["tests/evtx/test_evtx_rowfmt.py", "tests/evtx/test_evtx_csv_rows.py",
                         "tests/evtx/test_evtx_timeline_order.py",
                         "tests/evtx/test_evtx_record_select.py",
                         "tests/evtx/test_evtx_record_fields.py",
                         "tests/evtx/test_evtx_native.py",
                         "tests/evtx/test_evtx_chunk_select.py",
                         "tests/hostile/test_hostile_names.py::test_clean_and_shown"],
    "pagehash": ["tests/pagehash/test_pagehash_pages.py", "tests/pagehash/test_pagehash_vectors.py",
                 "tests/pagehash/test_pagehash_compare.py"],
}


def _cc() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is needed to build the extensions and this test"
    return cc


def _runtime(cc: str, lib: str) -> str:
    path = subprocess.run([cc, f"-print-file-name={lib}"], capture_output=True,
                          text=True).stdout.strip()
    assert os.path.isabs(path) and os.path.exists(path), f"{cc} has no {lib}"
    return path


def _env(cc: str) -> dict[str, str]:
    return dict(os.environ, PYTHONMALLOC="malloc",
                LD_PRELOAD=f"{_runtime(cc, 'libasan.so')}:{_runtime(cc, 'libubsan.so')}",
                # Python keeps objects alive at exit by design: leaks are not ours to judge here
                ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0",
                UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")


def _shared(cc: str, out: Path, sources: list[str]) -> None:
    build = subprocess.run(
        [cc, "-shared", "-fPIC", *FLAGS, f"-I{sysconfig.get_paths()['include']}", "-o",
         str(out), *sources], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory) -> Path:
    cc = _cc()
    build = tmp_path_factory.mktemp("asan")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for module, folder in SOURCES.items():
        _shared(cc, build / f"{module}{suffix}",
                sorted(str(p) for p in (REPO / "csrc" / folder).glob("*.c")))
    return build


CANARY = """#include <limits.h>
#include <stdlib.h>
#include <string.h>
int overflow(int n) { char *p = malloc(8); char q[16] = {0}; memcpy(q, p, 8); memcpy(q, p, n);
                      free(p); return q[0]; }
int add(int i) { int x = INT_MAX - 1; return x + i; }
"""


@pytest.mark.parametrize("call, report", [
    ("overflow(8); print('inside'); lib.overflow(9)",
     "ERROR: AddressSanitizer: heap-buffer-overflow"),
    ("add(1); print('inside'); lib.add(2)", "runtime error: signed integer overflow"),
])
def test_the_setup_reports_what_it_should(tmp_path, call, report):
    cc = _cc()
    canary = tmp_path / "canary.c"
    canary.write_text(CANARY)
    _shared(cc, tmp_path / "canary.so", [str(canary)])
    code = f"import ctypes; lib = ctypes.CDLL({str(tmp_path / 'canary.so')!r}); lib.{call}"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(cc), timeout=120)
    assert run.returncode != 0 and "inside" in run.stdout, run.stderr
    assert report in run.stderr, run.stderr


@pytest.mark.parametrize("group", list(GROUPS))
def test_extensions_under_asan_and_ubsan(sanitized, group):
    cc = _cc()
    run = subprocess.run(
        [sys.executable, str(HERE / "sanitized_run.py"), str(sanitized), "-q", "-x",
         "-p", "no:cacheprovider", *GROUPS[group]],
        capture_output=True, text=True, env=_env(cc), cwd=REPO, timeout=1200)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert "AddressSanitizer" not in out and "runtime error" not in out, out[-6000:]
    used = [ln for ln in run.stdout.splitlines() if ln.startswith("sanitized: ")]
    assert len(used) == 3 and all(str(sanitized) in ln for ln in used), used
    assert " passed" in out and " failed" not in out
