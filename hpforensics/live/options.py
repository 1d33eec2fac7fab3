"""Command-line choices turned into ScanOptions: rule loading, KB lookups, reference folders."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hpforensics.errors import UsageError
from hpforensics.live.scan import ScanOptions

log = logging.getLogger(__name__)


def build_options(reference: Sequence[Path], manifest: Path | None, store: Path | None,
                  yara: Path | None, read_all: bool) -> ScanOptions:
    for d in reference:
        if not d.is_dir():
            raise UsageError(f"--reference {d}: not a folder")
    rules = None
    if yara is not None:
        from hpforensics.yarascan import load_rules

        rules = load_rules([yara])
    return ScanOptions(skip_unchanged=not read_all, reference_dirs=[str(d) for d in reference],
                       kb_lookup=_kb_lookup(manifest, store), yara=rules)


def _kb_lookup(manifest: Path | None, store: Path | None) -> Any:
    """The KB manifest/store the PE engine uses to name the KB of a patch image."""
    if manifest is None and store is None:
        return None
    for p in (manifest, store):
        if p is not None and not p.is_file():
            raise UsageError(f"{p}: no such file")
    try:
        from hpforensics.kb import lookup  # type: ignore[attr-defined]
    except ImportError:
        raise UsageError("--manifest/--store: the KB manifest support is not installed") from None
    return lookup.open_lookup(manifest=manifest, store=store)
