"""Run pytest with the C extensions replaced by builds under AddressSanitizer + UBSan.

Usage: python sanitized_run.py BUILD_DIR PYTEST_ARGS... (in a process started with libasan and
libubsan preloaded, PYTHONMALLOC=malloc: see test_hostile_sanitizers.py). Each module in
BUILD_DIR is put in sys.modules under its package name before hpforensics is imported, so the
tests exercise the sanitized code; the modules used are printed for the caller to check.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

MODULES = ("_pagehash", "_evtxscan", "_rowfmt")


def _load(build: Path) -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for name in MODULES:
        full = f"hpforensics.{name}"
        path = build / f"{name}{suffix}"
        loader = importlib.machinery.ExtensionFileLoader(full, str(path))
        spec = importlib.util.spec_from_file_location(full, path, loader=loader)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        loader.exec_module(module)
        sys.modules[full] = module
    import hpforensics

    for name in MODULES:
        setattr(hpforensics, name, sys.modules[f"hpforensics.{name}"])
        print(f"sanitized: hpforensics.{name} from {sys.modules[f'hpforensics.{name}'].__file__}")


if __name__ == "__main__":
    _load(Path(sys.argv[1]))
    import pytest

    sys.exit(pytest.main(sys.argv[2:]))
