"""The verification engine: every module of an address space against its reference.

Both the memory-image path (Volatility layers) and the live path call `verify_space`; `pe diff`
calls it on a space built from files. Per module: expected image (cached per file and base),
one masked comparison in the C core, then classification of each changed run.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

from hpforensics.classify.extension import ExtensionVerifier
from hpforensics.classify.owners import AddressMap
from hpforensics.reference.patches import PatchImage, collect_patches
from hpforensics.classify.verdicts import Context, ModuleClassifier
from hpforensics.errors import InputError
from hpforensics.model import Finding, ModuleSummary, ScanResult
from hpforensics.pe.peek import peek
from hpforensics.reference.expected import ExpectedImage
from hpforensics.reference.provider import ReferenceProvider
from hpforensics.space import AddressSpace, MappedImage

log = logging.getLogger(__name__)

KbLookup = Callable[[str], Optional[str]]  # patch image path -> "KB5052105" or None
Progress = Callable[[MappedImage, int, int], None]  # (image, index, total)


def _machine(space: AddressSpace, image: MappedImage) -> int:
    """The image's Machine from its mapped header; AMD64 when unreadable."""
    h = peek(space.read_exact(image.base, 0x400) or b"")
    if h is not None:
        return h.machine
    return 0x8664


def _context(space: AddressSpace, images: Sequence[MappedImage], patches: Sequence[PatchImage],
             expected: dict[int, ExpectedImage], include_loader: bool,
             everything: Sequence[MappedImage] | None = None) -> Context:
    amap = AddressMap(everything if everything is not None else space.images(), space)
    patch_bases = {p.image.base for p in patches}
    others = [m for m in amap.images if m.base not in patch_bases]
    by_identity = {}
    for m in images:
        e = expected.get(m.base)
        if e is not None:
            by_identity[(e.timestamp, e.checksum)] = m
        elif m.timestamp is not None and m.checksum is not None:
            by_identity[(m.timestamp, m.checksum)] = m
    return Context(space, amap, patches, others_known=len(others) > 1,
                   include_loader=include_loader, by_identity=by_identity)


def verify_image(
    space: AddressSpace,
    image: MappedImage,
    expected: ExpectedImage,
    patch_images: Sequence[PatchImage] = (),
    *,
    reference: str | None = None,
    include_loader: bool = False,
    context: Context | None = None,
) -> tuple[list[Finding], ModuleSummary]:
    """Findings (sorted) and page accounting for one module of `space`."""
    ctx = context or _context(space, [image], patch_images, {image.base: expected}, include_loader)
    own = next((p for p in ctx.patches if p.image.base == image.base), None)
    label = reference or f"disk:{expected.path}"
    return ModuleClassifier(ctx, image, expected, label, own).run()


def verify_space(
    space: AddressSpace,
    references: ReferenceProvider,
    *,
    kb_lookup: KbLookup | None = None,
    images: Sequence[MappedImage] | None = None,
    progress: Progress | None = None,
    include_loader: bool = False,
) -> ScanResult:
    """Verify every image of `space` (or `images`) against `references`."""
    result = ScanResult()
    everything = list(space.images())  # a Volatility space may walk its lists on every call
    todo = sorted(images if images is not None else everything, key=lambda m: m.base)
    expected: dict[int, ExpectedImage | None] = {}

    def expected_of(m: MappedImage) -> ExpectedImage | None:
        if m.base not in expected:
            try:
                expected[m.base] = references.expected_for(m, space)
            except Exception as exc:  # a corrupt reference file costs that module only
                if not isinstance(exc, InputError):
                    log.exception("reference for %s at %#x", m.name, m.base)
                result.warnings.append(f"{m.name} at {m.base:#x}: reference unusable: {exc}")
                expected[m.base] = None
        return expected[m.base]

    patches = collect_patches(space, everything, expected_of, kb_lookup, verified=todo)
    found = {b: e for b, e in expected.items() if e is not None}
    for m in todo:
        if expected_of(m) is not None:
            found[m.base] = expected[m.base]  # type: ignore[assignment]
    ctx = _context(space, todo, patches, found, include_loader, everything)
    for i, m in enumerate(todo):
        if progress is not None:
            progress(m, i, len(todo))
        exp = expected.get(m.base)
        if exp is None:
            # No reference for the image itself; its extension pages need none.
            ext = ExtensionVerifier(ctx, m, m.timestamp, m.checksum, _machine(space, m),
                                    set()).run()
            result.findings.extend(ext.findings)
            result.modules.append(ModuleSummary(
                source=space.source, pid=space.pid, process=space.process, module=m.name,
                module_path=m.path, module_base=m.base, size=m.size, reference="none",
                status="no-reference", extension_pages=ext.pages,
                extension_unexplained=ext.unexplained_pages, hpat_stubs_used=ext.stubs_used,
                hpat_stubs_free=ext.stubs_free, extension_content=ext.content))
            continue
        try:
            findings, summary = verify_image(space, m, exp, patches, context=ctx,
                                             reference=references.label(exp))
        except Exception as exc:  # one bad module must not end a scan of hundreds
            if not isinstance(exc, InputError):
                log.exception("verifying %s at %#x", m.name, m.base)
            why = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            result.warnings.append(f"{m.name} at {m.base:#x}: {why}")
            result.modules.append(ModuleSummary(
                source=space.source, pid=space.pid, process=space.process, module=m.name,
                module_path=m.path, module_base=m.base, size=m.size,
                reference=references.label(exp),
                status=f"error: {why}"))
            continue
        result.findings.extend(findings)
        result.modules.append(summary)
        result.warnings.extend(f"{m.name} at {m.base:#x}: {w}" for w in exp.warnings)
    result.findings.sort(key=lambda f: (f.pid if f.pid is not None else -1, f.address, f.size,
                                        f.verdict.value))
    return result
