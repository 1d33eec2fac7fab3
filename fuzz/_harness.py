"""Shared set-up of the atheris harnesses: instrument hpforensics, run a target, and treat any
exception but the ones a parser is allowed to raise (InputError and its subclasses) as a bug.

Every harness is a script: `python fuzz/fuzz_pe.py [libFuzzer flags] CORPUS_DIR [SEED_DIR]`.
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable

import atheris

# Quiet logs: parsers warn on every damaged input, which would drown libFuzzer's output.
import logging

logging.disable(logging.CRITICAL)


def instrumented():
    """Context manager: imports inside it get coverage instrumentation (hpforensics only)."""
    return atheris.instrument_imports(include=["hpforensics"])


class ScratchFile:
    """One reusable temporary file for targets that want a path (the parsers open it read-only)."""

    def __init__(self, suffix: str) -> None:
        fd, self.path = tempfile.mkstemp(prefix="hpf-fuzz-", suffix=suffix)
        os.close(fd)

    def write(self, data: bytes) -> str:
        with open(self.path, "wb") as fh:
            fh.write(data)
        return self.path


def main(test_one: Callable[[bytes], None]) -> None:
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
