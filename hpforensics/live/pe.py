"""PE images in a live process (Windows, or Wine on Linux): handed to the verification engine.

The engine lays the on-disk file out and relocates it as the loader would, masks loader-written
bytes and classifies hotpatch redirects; the live scanner only supplies the address space and
where to find the files. For Wine the mapped file itself is the reference, so its folder is
searched first, then --reference folders.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Sequence

from hpforensics.model import Finding, ModuleSummary
from hpforensics.live.space import LiveSpace
from hpforensics.space import PAGE_SIZE, MappedImage

if TYPE_CHECKING:
    from hpforensics.reference import ReferenceProvider

log = logging.getLogger(__name__)


def reference_dirs(images: Sequence[MappedImage], extra: Sequence[str]) -> list[str]:
    dirs: list[str] = []
    for image in images:
        d = os.path.dirname(image.path.replace("\\", "/"))
        if d and os.path.isdir(d) and d not in dirs:
            dirs.append(d)
    return dirs + [d for d in extra if d not in dirs]


def verify_pe_images(
    space: LiveSpace, images: list[MappedImage], options: Any
) -> tuple[list[ModuleSummary], list[Finding], list[str]]:
    try:
        # lazy: only this path uses it (kept off this module's import cost)
        from hpforensics.engine import verify_space
        from hpforensics.reference import DiskReferences
    except ImportError as exc:
        why = f"no-reference: PE verification engine not available ({exc.name})"
        return [_unverified(space, image, why) for image in images], [], []
    refs: ReferenceProvider = DiskReferences(reference_dirs(images, options.reference_dirs))
    if getattr(options, "fallback", None) is not None:  # --store / --manifest with page hashes
        # lazy: only this path uses it (kept off this module's import cost)
        from hpforensics.reference import ChainReferences

        refs = ChainReferences([refs, options.fallback])
    scan = verify_space(space, refs, kb_lookup=options.kb_lookup, images=images)
    return scan.modules, scan.findings, scan.warnings


def _unverified(space: LiveSpace, image: MappedImage, status: str) -> ModuleSummary:
    pages = (image.size + PAGE_SIZE - 1) // PAGE_SIZE
    return ModuleSummary(space.source, space.pid, space.process, image.name, image.path,
                         image.base, image.size, "none", pages_total=pages,
                         pages_unavailable=pages, status=status)
