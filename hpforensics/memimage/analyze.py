"""Run the analysis over every process and kernel space of a memory image.

One pass per address space: the images (loader list + image VADs), the hotpatch-image records
(loader claims checked against code) and, given references, the engine's page-by-page verdicts.
Everything is returned as data; the plugins and the CLI only render it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from dataclasses import replace
from typing import Callable, Iterator, Optional, Sequence

from hpforensics.memimage import walk
from hpforensics.memimage.patchstate import HotpatchImageRecord, hotpatch_images, quiet_pe_parsing
from hpforensics.model import ModuleSummary, ScanResult, YaraMatch
from hpforensics.space import MappedImage
from hpforensics.sources.volatility import VolatilityAddressSpace
from hpforensics.yarascan.memory import scan_changed, scan_images
from hpforensics import engine

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class SpaceResult:
    space: VolatilityAddressSpace
    record: walk.ProcessRecord
    images: list[HotpatchImageRecord] = field(default_factory=list)
    scan: ScanResult = field(default_factory=ScanResult)
    yara: list[YaraMatch] = field(default_factory=list)


@dataclass
class Analysis:
    spaces: list[SpaceResult] = field(default_factory=list)

    @property
    def hotpatch_images(self) -> list[HotpatchImageRecord]:
        return [r for s in self.spaces for r in s.images]

    @property
    def findings(self):
        return [f for s in self.spaces for f in s.scan.findings]

    @property
    def modules(self) -> list[ModuleSummary]:
        return [m for s in self.spaces for m in s.scan.modules]

    @property
    def yara(self) -> list[YaraMatch]:
        return [y for s in self.spaces for y in s.yara]

    @property
    def pages_beyond_end(self) -> int:
        return sum(s.space.beyond_end for s in self.spaces)

    @property
    def damaged(self) -> bool:
        """Some of the image could not be read as it was: pages past its end, lost records."""
        return bool(self.pages_beyond_end) or any(s.record.damaged for s in self.spaces)

    @property
    def warnings(self) -> list[str]:
        return [w for s in self.spaces for w in s.scan.warnings + s.record.warnings]


def spaces(context, kernel: str, source: str, pids: Sequence[int] | None = None,
           include_kernel: bool = True,
           ) -> Iterator[tuple[VolatilityAddressSpace, walk.ProcessRecord]]:
    """Every process (filtered by pid) and, unless filtered, kernel space."""
    for rec in walk.processes(context, kernel, list(pids) if pids else None):
        yield VolatilityAddressSpace(context, rec.layer_name, rec.images, source=source,
                                     pid=rec.pid, process=rec.name), rec
    if include_kernel and not pids:
        rec = walk.kernel_modules(context, kernel)
        layer = context.layers[rec.layer_name]
        rec.images = [_canonical(layer, m) for m in rec.images]
        yield VolatilityAddressSpace(context, rec.layer_name, rec.images, source=source,
                                     pid=None, process="kernel"), rec


def _canonical(layer, m: MappedImage) -> MappedImage:
    canon = getattr(layer, "canonicalize", None)
    return replace(m, base=canon(m.base)) if canon else m


def analyze(
    context,
    kernel: str,
    *,
    source: str,
    references=None,
    kb_lookup: Optional[Callable[[str], Optional[str]]] = None,
    pids: Sequence[int] | None = None,
    verify: bool = True,
    patch_records: bool = True,
    progress: Progress | None = None,
    check_tables: Callable[[int], None] | None = None,
    yara=None,  # hpforensics.yarascan RuleSet: scanned over every changed range
    yara_all: bool = False,  # scan every image region with `yara`, not only changed ranges
) -> Analysis:
    """Images, hotpatch records (with `patch_records`) and page verdicts (with `verify`)."""
    result = Analysis()
    todo = list(spaces(context, kernel, source, pids))
    if check_tables is not None:  # before any output: a cut-short image is reported, not analysed
        for _, rec in todo:
            if rec.pid is not None and rec.dtb:
                check_tables(rec.dtb)
    total_images = sum(len(rec.images) for _, rec in todo)
    done = 0
    for space, rec in todo:
        sr = SpaceResult(space, rec)
        if patch_records:
            sr.images = hotpatch_images(space, peb_flag=rec.images_hotpatched,
                                        kb_lookup=kb_lookup)
        if verify:
            sr.scan = verify_space(space, references, kb_lookup)
            if yara is not None:

                sr.yara = (scan_images(yara, space, space.images()) if yara_all
                           else scan_changed(yara, space, sr.scan.findings))
        if space.beyond_end:
            sr.scan.warnings.append(
                f"{rec.name}: {space.beyond_end} page reads fell past the end of the image file "
                "(truncated image?); those pages are reported unavailable")
        done += len(rec.images)
        if progress is not None:
            progress(f"{rec.name} ({rec.pid if rec.pid is not None else 'kernel'})", done,
                     total_images)
        result.spaces.append(sr)
    return result


class _NoReferences:
    """Without --reference every module is reported as `no-reference`, still page-counted."""

    def expected_for(self, image, space):
        return None

    def label(self, expected) -> str:
        return "none"


def verify_space(space: VolatilityAddressSpace, references, kb_lookup) -> ScanResult:

    with quiet_pe_parsing():  # the engine parses mapped headers of images without a file too
        return engine.verify_space(space, references or _NoReferences(), kb_lookup=kb_lookup)
