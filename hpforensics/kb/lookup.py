"""The engine's KB lookup (patch image path -> KB) over manifests and/or a page-hash store.

`open_lookup` is what the memory-image and live paths call for `--manifest` / `--store`. A
manifest may be an hpforensics KB manifest (or a folder of them) or a plain mapping of file name
to KB (`{"files": {"hp.dll": "KB..."}}`, `{"hp.dll": "KB..."}`, or CSV with `file,kb`).
"""
from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path
from typing import Callable, Optional

from hpforensics.errors import InputError
from hpforensics.kb.manifest import FORMAT, load, manifest_paths
from hpforensics.kb.manifest_index import ManifestIndex
from hpforensics.kb.store import PageStore

log = logging.getLogger(__name__)

KbLookup = Callable[[str], Optional[str]]
_KB = re.compile(r"^KB\d{6,8}$", re.IGNORECASE)


def _name(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1].lower()


def _plain(path: Path, text: str) -> dict[str, str]:
    try:
        if text.lstrip().startswith(("{", "[")):
            data = json.loads(text)
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                data = data["files"]
            if isinstance(data, list):
                data = {str(r["file"]): str(r["kb"]) for r in data}
            pairs = {_name(str(k)): v for k, v in data.items() if not str(k).startswith("_")}
        else:
            pairs = {_name(r["file"]): r["kb"] for r in csv.DictReader(text.splitlines())}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(path, f"not a KB manifest: {exc}") from None
    # every value must name a KB: {"files": 7} or {"x.dll": {...}} is some other JSON
    for name, kb in pairs.items():
        if not isinstance(kb, str) or not _KB.match(kb):
            raise InputError(path, f"not a KB manifest: {name!r} maps to {kb!r}, not a KB number")
    if not pairs:
        raise InputError(path, "not a KB manifest: no file → KB entries")
    return {name: kb.upper() for name, kb in pairs.items()}


def _manifest_lookup(path: Path) -> KbLookup:
    index = ManifestIndex()
    plain: dict[str, str] = {}
    for p in manifest_paths([path]):
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(p, f"not a KB manifest: not UTF-8 text ({exc.reason})",
                             exc.start) from None
        except OSError as exc:
            raise InputError(p, exc.strerror or str(exc)) from None
        if f'"{FORMAT}"' in text:
            index.add(load(p))
        else:
            plain.update(_plain(p, text))

    def lookup(image_path: str) -> Optional[str]:
        return index.kb_for_name(image_path) or plain.get(_name(image_path))

    return lookup


def _store_lookup(path: Path) -> KbLookup:

    store = PageStore(path)

    def lookup(image_path: str) -> Optional[str]:
        kbs = {kb for v in store.versions(_name(image_path)) for kb in v.kbs}
        return kbs.pop() if len(kbs) == 1 else None

    return lookup


def open_lookup(manifest: Path | None = None, store: Path | None = None) -> KbLookup | None:
    """One callable over whatever was given; the manifest answers first."""
    parts = [f(Path(p)) for p, f in ((manifest, _manifest_lookup), (store, _store_lookup)) if p]
    if not parts:
        return None

    def lookup(image_path: str) -> Optional[str]:
        for part in parts:
            kb = part(image_path)
            if kb:
                return kb
        return None

    return lookup
