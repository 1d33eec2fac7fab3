"""Command-line choices turned into ScanOptions: reference folders, KB lookup, YARA rules.

The KB lookup and rule loading are the memory-image path's own (hpforensics.scan_inputs),
so `--manifest`, `--store` and `--yara` mean the same in `live` and `dump analyze`: the store
(and manifests with page hashes) also verify PE images no file on disk matches.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from hpforensics.errors import UsageError
from hpforensics.live.scan import ScanOptions
from hpforensics.scan_inputs import kb_lookup, references, yara_rules

log = logging.getLogger(__name__)


def build_options(reference: Sequence[Path], manifest: Path | None, store: Path | None,
                  yara: Path | None, read_all: bool, yara_all: bool = False) -> ScanOptions:
    for d in reference:
        if not d.is_dir():
            raise UsageError(f"--reference {d}: not a folder")
    return ScanOptions(skip_unchanged=not read_all, reference_dirs=[str(d) for d in reference],
                       kb_lookup=kb_lookup(manifest, store), yara=yara_rules(yara),
                       yara_all=yara_all,
                       fallback=references([], store, manifest))
