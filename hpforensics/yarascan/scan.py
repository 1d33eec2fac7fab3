"""Run a compiled RuleSet over files, folders, and memory regions, producing YaraMatch rows."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from hpforensics.errors import InputError
import yara

from hpforensics.evidence import open_evidence
from hpforensics.model import YaraMatch
from hpforensics.yarascan.compile import RuleSet

log = logging.getLogger(__name__)

# A memory region shorter than a redirect plus the padding before it cannot hold a whole
# pattern; scanning a changed range is done with this much context on either side.
CONTEXT = 16


def _rows(
    matches: list,
    *,
    source: str,
    module: str,
    region_base: int,
    pid: int | None = None,
    process: str = "",
    verdict: str = "",
) -> Iterator[YaraMatch]:
    for m in matches:
        meta = {str(k): str(v) for k, v in sorted(m.meta.items())}
        for s in m.strings:
            for inst in s.instances:
                yield YaraMatch(
                    source=source,
                    pid=pid,
                    process=process,
                    module=module,
                    region_base=region_base,
                    address=region_base + inst.offset,
                    rule=m.rule,
                    namespace=m.namespace,
                    tags=tuple(m.tags),
                    string_id=s.identifier,
                    matched=bytes(inst.matched_data),
                    verdict=verdict,
                    meta=meta,
                )
        if not m.strings:  # condition-only rule (e.g. the pe-module rules): one hit at 0
            yield YaraMatch(source, pid, process, module, region_base, region_base, m.rule,
                            m.namespace, tuple(m.tags), "", b"", verdict, meta)


def _iter_files(targets: Sequence[str | os.PathLike[str]]) -> Iterator[Path]:
    for t in map(Path, targets):
        if t.is_dir():
            yield from sorted(p for p in t.rglob("*") if p.is_file() and not p.is_symlink())
        elif t.exists():
            yield t
        else:
            raise InputError(t, "no such file or folder")


def scan_paths(
    rules: RuleSet, targets: Sequence[str | os.PathLike[str]], warnings: list[str] | None = None
) -> Iterator[YaraMatch]:
    """Every hit in every file under `targets`; unreadable files become warnings, not errors."""
    for path in _iter_files(targets):
        try:
            open_evidence(path).close()  # a clear message for what yara would only call "error"
            # libyara maps the file itself, read-only, so nothing is copied into Python
            matches = rules.rules.match(filepath=str(path))
        except InputError as exc:
            if warnings is not None:
                warnings.append(str(exc))
            continue
        except yara.Error as exc:
            if warnings is not None:
                warnings.append(f"{path}: {exc}")
            continue
        yield from _rows(matches, source=f"file:{path}", module=path.name, region_base=0)


def scan_region(
    rules: RuleSet,
    data: bytes,
    base: int,
    *,
    source: str,
    module: str,
    pid: int | None = None,
    process: str = "",
    verdict: str = "",
) -> list[YaraMatch]:
    """Hits in one memory region read at `base` (a changed range with context, or a whole one)."""
    return list(_rows(rules.match(data), source=source, module=module, region_base=base, pid=pid,
                      process=process, verdict=verdict))


def changed_windows(ranges: Iterable[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """Grow each changed (start, end) by CONTEXT on both sides, clip to [lo, hi), merge overlaps."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        s, e = max(lo, start - CONTEXT), min(hi, end + CONTEXT)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
