"""YARA over an address space: by default only the ranges that differ from their reference.

Both the memory-image path and the live scanner call these two functions after the engine ran,
so `--yara` behaves the same everywhere: matches carry the verdict of the range they lie in.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from hpforensics.model import Finding, Verdict, YaraMatch
from hpforensics.space import AddressSpace, MappedImage
from hpforensics.yarascan.compile import RuleSet
from hpforensics.yarascan.scan import changed_windows, scan_region

# Whole-image scans read in slices this big, overlapping by the longest pattern we ship.
SLICE = 1 << 20
OVERLAP = 64


def scan_changed(rules: RuleSet, space: AddressSpace,
                 findings: Iterable[Finding]) -> list[YaraMatch]:
    """Scan each changed range (with context) of each module; unavailable ranges are skipped."""
    by_module: dict[tuple[int, str], list[Finding]] = {}
    for f in findings:
        if f.verdict is Verdict.UNAVAILABLE:
            continue
        by_module.setdefault((f.module_base, f.module), []).append(f)
    hits: list[YaraMatch] = []
    for (base, module), group in sorted(by_module.items()):
        image = space.image_at(base)
        hi = max(f.address + f.size for f in group) + 64
        if image is not None:  # the mapping's end: extension pages lie past SizeOfImage
            hi = max(image.base + (image.mapped_size or image.size), image.end)
        spans = ((f.address, f.address + f.size) for f in group)
        for start, end in changed_windows(spans, base, hi):
            data = space.read(start, end - start).data
            for h in scan_region(rules, data, start, source=space.source, module=module,
                                 pid=space.pid, process=space.process):
                hits.append(replace(h, verdict=_verdict_at(group, h.address, len(h.matched))))
    return _dedup(hits)


def _verdict_at(group: list[Finding], address: int, length: int) -> str:
    """Verdicts of the changed ranges the hit overlaps, else of the nearest one (context hit).

    Windows of neighbouring findings merge, so the window's verdicts would mix a hotpatch with
    an attacker's hook two functions away; the hit's own range decides.
    """
    end = address + max(length, 1)
    own = sorted({str(f.verdict) for f in group
                  if f.address < end and f.address + f.size > address})
    if own:
        return ",".join(own)
    nearest = min(group, key=lambda f: min(abs(f.address - end), abs(f.address + f.size - address)))
    return str(nearest.verdict)


def scan_images(rules: RuleSet, space: AddressSpace,
                images: Sequence[MappedImage]) -> list[YaraMatch]:
    """`--yara-all`: every byte of every given image, read in overlapping slices."""
    return scan_ranges(rules, space, [(i.base, i.end, i.name) for i in images])


def scan_ranges(rules: RuleSet, space: AddressSpace,
                ranges: Sequence[tuple[int, int, str]]) -> list[YaraMatch]:
    """Every byte of each (start, end, name) range, read in overlapping slices so memory stays
    bounded and a pattern across a slice boundary is still seen."""
    hits: list[YaraMatch] = []
    for start, end, name in ranges:
        pos = start
        while pos < end:
            size = min(SLICE + OVERLAP, end - pos)
            result = space.read(pos, size)
            hits += scan_region(rules, result.data, pos, source=space.source, module=name,
                                pid=space.pid, process=space.process)
            pos += SLICE
    return _dedup(hits)


def _dedup(hits: list[YaraMatch]) -> list[YaraMatch]:
    """Overlapping windows see the same string twice; keep one, in address order."""
    seen: set[tuple[str, str, int, str]] = set()
    out: list[YaraMatch] = []
    for h in sorted(hits, key=lambda h: (h.address, h.namespace, h.rule, h.string_id)):
        key = (h.namespace, h.rule, h.address, h.string_id)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out
