"""Reference, KB-lookup and YARA choices shared by the Volatility plugins and `dump analyze`.

A KB lookup names the KB that ships a patch image: hpforensics.kb.lookup over a KB manifest
(the kb package's format, or a plain file name → KB mapping) and/or a page-hash store.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional, Sequence

from hpforensics.errors import UsageError
from hpforensics.kb.lookup import open_lookup
from hpforensics.kb.store_references import open_references
from hpforensics.yarascan.compile import load_rules

log = logging.getLogger(__name__)

KbLookup = Callable[[str], Optional[str]]


def kb_lookup(manifest: Path | None, store: Path | None) -> KbLookup | None:
    """The kb package's lookup over a KB manifest and/or a page-hash store (or None)."""
    if manifest is None and store is None:
        return None
    for p in (manifest, store):
        if p is not None and not Path(p).exists():
            raise UsageError(f"{p}: no such file")

    return open_lookup(manifest=manifest, store=store)


def references(dirs: Sequence[Path], store: Path | None = None, manifest: Path | None = None):
    """A reference provider over on-disk folders, then the page-hash store and KB manifests
    with page hashes (hpforensics.kb.store_references), or None when nothing is given."""
    if not dirs and store is None and manifest is None:
        return None
    for p in (manifest, store):
        if p is not None and not Path(p).exists():
            raise UsageError(f"{p}: no such file")

    return open_references([Path(d) for d in dirs], store, manifest)


def yara_rules(path: Path | None):
    """Compiled rules for --yara, or None."""
    if path is None:
        return None

    return load_rules([path])
