"""Output paths built from evidence: a module name, a device name or an archive member must never
lead outside the output folder, whatever it holds (`..\\..\\x`, `/etc/x`, control characters,
Windows device names, 10 KB of text).

`safe_component` turns one untrusted name into one harmless file-name component; `safe_join`
builds a path under an output folder from such parts and checks the result stays inside it
(also through symlinks already present in the folder).
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

from hpforensics.errors import UsageError

MAX_COMPONENT_BYTES = 160  # well under NAME_MAX (255) so callers may add suffixes
# Separators of every platform, characters Windows refuses in names, and controls (C0, DEL, C1).
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f-\x9f]')
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", "conin$", "conout$",
                    *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def safe_component(name: object, default: str = "_") -> str:
    """One path component derived from `name`: no separators, no controls, not `.`/`..`, not a
    Windows device name, at most MAX_COMPONENT_BYTES of UTF-8. Deterministic: the same name
    always gives the same component; names cut short keep a hash of the original."""
    # lone surrogates (undecodable names) cannot be written to any file system: replace them
    text = str(name).encode("utf-8", "replace").decode("utf-8")
    text = unicodedata.normalize("NFC", text)
    # format characters (bidi overrides, zero-width) would make a name display as another
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = _UNSAFE.sub("_", text)
    text = text.strip(" .")  # Windows drops trailing dots/spaces; leading dots hide files
    if not text or set(text) <= {"_"} and len(text) <= 2:
        text = default
    stem = text.split(".", 1)[0].lower()
    if stem in _WINDOWS_DEVICES:
        text = "_" + text
    raw = text.encode("utf-8")
    if len(raw) > MAX_COMPONENT_BYTES:
        digest = hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:12]
        keep = raw[: MAX_COMPONENT_BYTES - 13].decode("utf-8", "ignore")
        text = f"{keep}~{digest}"
    return text


def safe_join(outdir: str | os.PathLike[str], *parts: object) -> Path:
    """`outdir / part / ...` with every part made safe; raises UsageError if the result would
    still resolve outside `outdir` (a symlink planted inside it, for instance)."""
    base = Path(outdir)
    path = base.joinpath(*(safe_component(p) for p in parts))
    root = os.path.realpath(base)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise UsageError(f"{path}: output path leads outside {base} (symlink?)")
    return path
