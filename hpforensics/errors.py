"""Errors a user can cause, and the exit codes the CLI maps them to.

Every parser raises `InputError` (never a bare struct.error or IndexError) for evidence it
cannot read, naming the file and the offset, so the CLI can print one line and exit non-zero.
"""
from __future__ import annotations

import enum
import os

from hpforensics.textsafe import clean, shown


class ExitCode(enum.IntEnum):
    OK = 0
    FINDINGS = 1  # analysis ran and reported unexplained changes (only with --fail-on-findings)
    USER_ERROR = 2  # bad arguments, unreadable or malformed input, nothing usable produced
    PARTIAL = 3  # some input was corrupt: every intact record was kept and reported


class HPFError(Exception):
    """Base of every error hpforensics raises on purpose."""

    exit_code: ExitCode = ExitCode.USER_ERROR


class UsageError(HPFError):
    """The command line asks for something impossible (bad option value, missing file)."""


class InputError(HPFError):
    """Evidence that cannot be read as what it claims to be."""

    def __init__(self, path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None,
                 message: str, offset: int | None = None) -> None:
        # the path and the message reach every output: undecodable bytes escaped once, here
        self.path = shown(path) if path is not None else None
        self.offset = offset
        self.message = clean(message)
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = self.path or "<input>"
        if self.offset is not None:
            where += f" at offset {self.offset:#x}"
        return f"{where}: {self.message}"


class PartialInput(InputError):
    """Some records were unreadable; the caller kept every good one."""

    exit_code = ExitCode.PARTIAL
