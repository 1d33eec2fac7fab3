"""`store build`: import folders of binaries into a page-hash store, streaming."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from hpforensics.errors import InputError
from hpforensics.kb.calendar import normalize_kb
from hpforensics.kb.scan import ScannedFile, Skip, scan_paths, walk
from hpforensics.kb.store import PageStore

log = logging.getLogger(__name__)

COMMIT_EVERY = 500  # files per transaction


@dataclass
class BuildReport:
    added: int = 0  # new image versions
    known: int = 0  # versions already in the store (KB links still added)
    pages: int = 0  # pages written
    seconds: float = 0.0
    skipped: list[Skip] = field(default_factory=list)

    @property
    def errors(self) -> list[Skip]:
        return [s for s in self.skipped if s.error]


def build(
    store: PageStore,
    roots: Iterable[Path],
    kbs: Iterable[str] = (),
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> BuildReport:
    kb_list = [normalize_kb(k) or k for k in kbs]
    roots = [Path(r) for r in roots]
    for r in roots:  # before any worker starts: a typo is a user error, not a partial run
        if not r.exists():
            raise InputError(r, "no such file or directory")
    report = BuildReport()
    start = time.perf_counter()
    with store.bulk():
        for n, item in enumerate(scan_paths(walk(roots), store.algo, workers=workers), 1):
            if isinstance(item, Skip):
                report.skipped.append(item)
                level = logging.WARNING if item.error else logging.DEBUG
                log.log(level, "skipped %s: %s", item.path, item.reason)
            else:
                _add(store, item, kb_list, report)
            if n % COMMIT_EVERY == 0:
                store.commit()
                if progress:
                    progress(n)
    report.seconds = time.perf_counter() - start
    return report


def _add(store: PageStore, item: ScannedFile, kbs: list[str], report: BuildReport) -> None:
    _, new = store.add_image(item.norm, path=item.path, sha256=item.sha256,
                             file_version=item.file_version, kbs=kbs)
    if new:
        report.added += 1
        report.pages += len(item.norm.pages)
    else:
        report.known += 1
