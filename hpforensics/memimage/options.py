"""Reference and KB-lookup choices shared by the Volatility plugins and `dump analyze`.

A KB lookup names the KB that ships a patch image. The kb package's lookup (manifest or
page-hash store) is used when installed; otherwise a plain manifest maps patch file names to
KBs: JSON `{"hpbase_hp1.dll": "KB5089466", ...}` (or `{"files": {...}}`), or CSV with `file`
and `kb` columns.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Callable, Optional, Sequence

from hpforensics.errors import InputError, UsageError

log = logging.getLogger(__name__)

KbLookup = Callable[[str], Optional[str]]


def _plain_manifest(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
            data = json.loads(text)
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                data = data["files"]
            if isinstance(data, list):
                data = {str(r["file"]): str(r["kb"]) for r in data}
            return {str(k).lower().rsplit("\\", 1)[-1].rsplit("/", 1)[-1]: str(v)
                    for k, v in data.items()}
        rows = csv.DictReader(text.splitlines())
        return {r["file"].lower().rsplit("\\", 1)[-1]: r["kb"] for r in rows}
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a KB manifest (file → KB): {exc}") from None


def kb_lookup(manifest: Path | None, store: Path | None) -> KbLookup | None:
    if manifest is None and store is None:
        return None
    for p in (manifest, store):
        if p is not None and not Path(p).is_file():
            raise UsageError(f"{p}: no such file")
    try:
        from hpforensics.kb import lookup  # type: ignore[attr-defined]

        return lookup.open_lookup(manifest=manifest, store=store)
    except ImportError:
        pass
    if manifest is None:
        raise UsageError("--store: page-hash store lookups need the kb package's lookup module")
    table = _plain_manifest(Path(manifest))

    def lookup_name(path: str) -> Optional[str]:
        return table.get(path.lower().replace("/", "\\").rsplit("\\", 1)[-1])

    return lookup_name


def references(dirs: Sequence[Path]):
    """A reference provider over on-disk folders, or None when none is given."""
    if not dirs:
        return None
    from hpforensics.reference.disk import DiskReferences

    return DiskReferences([Path(d) for d in dirs])


def yara_rules(path: Path | None):
    """Compiled rules for --yara, or None."""
    if path is None:
        return None
    from hpforensics.yarascan.compile import load_rules

    return load_rules([path])
