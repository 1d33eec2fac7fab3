"""Text from evidence made safe to write anywhere: every output (CSV, JSONL, HTML, console)
is UTF-8, and some strings cannot be encoded as UTF-8 at all.

Two kinds of such strings reach us:
- file names that are not valid UTF-8 (copied from another system, or named to break tools):
  Python hands them over with each undecodable byte as a lone surrogate U+DC80..U+DCFF
  (the "surrogateescape" error handler, PEP 383);
- attacker-written record text (a JSON export with "\\ud800", a registry value) holding lone
  surrogates of any value.

Each lone surrogate is replaced by printable ASCII once, where the text enters, so every output
shows the same characters: an undecodable byte 0xNN as the four characters `\\xNN`, any
other lone surrogate as `\\uXXXX`. Valid text, backslashes included, is left as it is (a
literal `\\xff` in a real name reads the same; the outputs are for reading, the evidence keeps
its bytes).
"""
from __future__ import annotations

import os
import re

_LONE = re.compile("[\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\u{c:04x}"


def clean(text: str) -> str:
    """`text` with every lone surrogate escaped (the same object when there is none)."""
    if text.isascii():  # O(1) in CPython: most text is plain ASCII
        return text
    return _LONE.sub(_escape, text)


def shown(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """A path as every output shows it: bytes decoded as the file system does, then undecodable
    bytes escaped as `\\xNN`."""
    return clean(os.fsdecode(path))
