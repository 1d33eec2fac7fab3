"""Scan one live process: every image it maps, native (ELF) or PE, into findings and summaries.

The backend only answers questions (regions, bytes, unchanged pages, the mapped file); the
decisions are made here, the same on every OS.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

from hpforensics.errors import InputError
from hpforensics.live.classify import follow_branch, region_of
from hpforensics.live.elf import ElfInfo, is_elf, read_elf
from hpforensics.live.native import Diff, RegionCompare, comparable_length, compare_region
from hpforensics.model import Finding, ModuleSummary, Verdict
from hpforensics.live.space import LiveScanResult, LiveSpace, ProcessSummary, Region
from hpforensics.space import PAGE_SIZE, MappedImage
from hpforensics.yarascan.memory import scan_ranges
from hpforensics.yarascan import scan_changed
from hpforensics.live.pe import verify_pe_images

log = logging.getLogger(__name__)

# Mappings the kernel provides without a file: said so, never compared.
CHANGED_ON_DISK = "changed-on-disk: file written in place after the process started"
KERNEL_PROVIDED = ("[vdso]", "[vsyscall]", "[vectors]", "[sigpage]", "[uprobes]")


@dataclass
class ScanOptions:
    skip_unchanged: bool = True  # trust the OS's "still the file's page" and do not read it
    reference_dirs: Sequence[str] = ()  # on-disk PE files (Windows images, Wine)
    kb_lookup: Any = None  # KB manifest / store, handed to the PE engine
    fallback: Any = None  # page-hash store / manifest provider for PE images no file matches
    yara: Any = None  # compiled RuleSet, run over each process's changed ranges
    yara_all: bool = False  # run `yara` over every executable mapping instead


class _ElfCache:
    """ELF headers and symbols, read once per file per process."""

    def __init__(self, space: LiveSpace) -> None:
        self.space = space
        self._by_path: dict[str, ElfInfo | None] = {}

    def get(self, region: Region) -> ElfInfo | None:
        if region.path not in self._by_path:
            fd, _ = self.space.open_file(region)
            info = None
            if fd is not None:
                try:
                    info = read_elf(fd, region.path) if is_elf(fd) else None
                except (InputError, OSError) as exc:
                    log.debug("%s: %s", region.path, exc)
                finally:
                    os.close(fd)
            self._by_path[region.path] = info
        return self._by_path[region.path]


def scan_process(
    space: LiveSpace, summary: ProcessSummary, result: LiveScanResult, options: ScanOptions
) -> None:
    """Fill `summary` and add this process's modules and findings to `result` — all at the end,
    so a process that exits half-way (ProcessGone propagates) leaves nothing half-counted."""
    elves = _ElfCache(space)
    findings: list[Finding] = []
    modules: list[ModuleSummary] = []
    pe_images: list[MappedImage] = []
    warnings: list[str] = []
    for image in space.images():
        module = _summary(space, image, f"disk:{image.path}")
        outcome = _scan_image(space, image, module, options, elves, warnings)
        if outcome is None:
            pe_images.append(image)  # verified by the engine below, with its own summary
        else:
            findings += outcome
            modules.append(module)
    for region in space.kernel_regions():
        if region.path in KERNEL_PROVIDED:
            mod = _summary(space, MappedImage(region.start, region.size, region.path,
                                              region.path), "none")
            mod.status = "skipped: kernel-provided, no file to compare with"
            modules.append(mod)
    if pe_images:
        findings += _scan_pe(space, pe_images, modules, result, options)
    yara_hits = []
    if options.yara is not None and options.yara_all:

        yara_hits = scan_ranges(options.yara, space, [
            (r.start, r.end, r.path.rsplit("/", 1)[-1] or r.describe())
            for r in space.regions() if r.executable])
    elif options.yara is not None and findings:

        yara_hits = scan_changed(options.yara, space, findings)
    os_patches = space.os_patch_records()
    for m in modules:
        _add(summary, m)
    result.modules += modules
    result.os_patches += os_patches
    result.warnings += warnings
    result.yara += yara_hits
    for f in findings:
        if f.verdict is Verdict.HOTPATCH:
            summary.hotpatch += 1
        elif f.verdict is Verdict.UNEXPLAINED:
            summary.unexplained += 1
        elif f.verdict is Verdict.LOADER:
            summary.loader += 1
        elif f.verdict is Verdict.UNVERIFIED:
            summary.unverified += 1
    result.findings += findings


def _scan_image(
    space: LiveSpace, image: MappedImage, module: ModuleSummary, options: ScanOptions,
    elves: _ElfCache, warnings: list[str],
) -> list[Finding] | None:
    """Findings of one native image (filling `module`), or None for a PE image (engine)."""
    mapped = space.image_regions(image)
    regions = [r for r in mapped if r.executable]
    # the file: through the first file-backed mapping (a Wine PE's header page)
    file_region = next((r for r in mapped if r.file_backed), None)
    if any(r.file_backed and space.modified_after_start(r) for r in regions):
        module.status = CHANGED_ON_DISK
        warnings.append(f"pid {space.pid}: {image.path} was written in place after the "
                        "process started; its code in memory and on disk may both have changed")
    flags = [space.unchanged_pages(r.start, r.end) if options.skip_unchanged else None
             for r in regions]
    if regions and all(f and all(f) for f in flags):
        # Every code page is still the mapped file's / image section's own page, so nothing
        # can differ and the file need not even be opened (it may be deleted or replaced:
        # these pages are the mapped inode's). Sound for PE images too: a page still shared
        # with the section holds what the memory manager produced, and one a loader
        # relocated or a patch changed is private.
        for r in regions:
            size = space.mapped_size(r) if r.file_backed else None
            length = comparable_length(r, size) if size is not None else r.size
            module.pages_total += length // PAGE_SIZE
        module.pages_skipped = module.pages_total
        return []
    fd, how = (space.open_file(file_region) if file_region and regions
               else (None, "no executable file mapping"))
    findings: list[Finding] = []
    try:
        if fd is not None and os.pread(fd, 2, 0) == b"MZ":
            return None
        if fd is None and options.fallback is not None and space.read_exact(image.base, 2) == b"MZ":
            return None  # no file to read, but the page-hash store may know the image
        if fd is None:
            module.reference = "none"
            module.status = f"no-reference: {how}"
        for region, region_flags in zip(regions, flags):
            if fd is None:
                cmp = _without_reference(region, region_flags)
            else:
                cmp = compare_region(space, region, fd, os.fstat(fd).st_size, region_flags)
                if cmp.diffs and not space.still_mapped(region):
                    module.status = "changed during scan: the mapping was replaced"
                    warnings.append(f"pid {space.pid}: {image.path} at {region.start:#x} was "
                                    "unmapped or replaced while it was read; not compared")
                    continue
            findings += _account(space, image, region, cmp, module, elves, how)
    finally:
        if fd is not None:
            os.close(fd)
    return findings


def _summary(space: LiveSpace, image: MappedImage, reference: str) -> ModuleSummary:
    return ModuleSummary(space.source, space.pid, space.process, image.name, image.path,
                         image.base, image.size, reference)


def _add(summary: ProcessSummary, module: ModuleSummary) -> None:
    summary.modules += 1
    summary.pages_total += module.pages_total
    summary.pages_skipped += module.pages_skipped
    summary.pages_unavailable += module.pages_unavailable
    summary.pages_read += module.pages_total - module.pages_skipped - module.pages_unavailable


def _without_reference(region: Region, flags: list[bool] | None) -> RegionCompare:
    """No file to compare with: pages the OS vouches for are still fine, the rest unknown."""
    out = RegionCompare()
    n = region.size // PAGE_SIZE
    out.pages_total = n
    flags = flags or [False] * n
    out.pages_skipped = sum(flags)
    for i, ok in enumerate(flags):
        if ok:
            continue
        out.pages_unavailable += 1
        a = region.start + i * PAGE_SIZE
        if out.unavailable and out.unavailable[-1][1] == a:
            out.unavailable[-1] = (out.unavailable[-1][0], a + PAGE_SIZE)
        else:
            out.unavailable.append((a, a + PAGE_SIZE))
    return out


def _account(
    space: LiveSpace, image: MappedImage, region: Region, cmp: RegionCompare,
    module: ModuleSummary, elves: _ElfCache, how: str,
) -> list[Finding]:
    module.pages_total += cmp.pages_total
    module.pages_skipped += cmp.pages_skipped
    module.pages_unavailable += cmp.pages_unavailable
    out: list[Finding] = []
    pages: dict[Verdict, set[int]] = {Verdict.HOTPATCH: set(), Verdict.UNEXPLAINED: set()}
    for diff in cmp.diffs:
        # headers and symbols are read only for images that differ: most never do
        f = _classify(space, image, region, diff, elves.get(region), elves)
        out.append(f)
        first = diff.address & ~(PAGE_SIZE - 1)
        pages[f.verdict].update(range(first, diff.address + len(diff.actual), PAGE_SIZE))
    # a page with any unexplained change counts as unexplained, whatever else it holds
    hot = pages[Verdict.HOTPATCH] - pages[Verdict.UNEXPLAINED]
    module.pages_hotpatched += len(hot)
    module.pages_unexplained += len(pages[Verdict.UNEXPLAINED])
    module.pages_verified += (cmp.pages_total - cmp.pages_skipped - cmp.pages_unavailable
                              - len(hot | pages[Verdict.UNEXPLAINED] | set(cmp.pages_differ)))
    reason = "page not readable" if fd_ok(module) else f"no reference: {how}"
    for lo, hi in cmp.unavailable:
        out.append(_finding(space, image, lo, hi - lo, Verdict.UNAVAILABLE, reason))
    return out


def fd_ok(module: ModuleSummary) -> bool:
    return module.reference != "none"


def _finding(space: LiveSpace, image: MappedImage, address: int, size: int, verdict: Verdict,
             reason: str, **kw: Any) -> Finding:
    return Finding(source=space.source, pid=space.pid, process=space.process, module=image.name,
                   module_path=image.path, module_base=image.base, address=address,
                   rva=address - image.base, size=size, verdict=verdict, reason=reason, **kw)


def entry_name(image: MappedImage, region: Region, address: int, elf: ElfInfo | None) -> str:
    """`lib.so!func+0x3`, or `lib.so+0x1234` when the file has no symbol there."""
    if elf is not None:
        sym = elf.symbol_at(elf.vaddr_of(address - region.start + region.offset))
        if sym:
            name, off = sym
            return f"{image.name}!{name}" + (f"+{off:#x}" if off else "")
    return f"{image.name}+{address - image.base:#x}"


def _classify(space: LiveSpace, image: MappedImage, region: Region, diff: Diff,
              elf: ElfInfo | None, elves: _ElfCache) -> Finding:
    machine = elf.machine if elf else 62
    branch = follow_branch(space.read_exact, diff.address, machine, len(diff.actual))
    entry = entry_name(image, region, diff.address, elf)
    regions = space.regions()
    owner = ""
    verdict, reason = Verdict.UNEXPLAINED, f"code differs from {image.name} on disk at {entry}"
    extra: dict[str, str] = {"entry": entry, "chain": " -> ".join(f"{a:#x}" for a in branch.chain)}
    patch_image, patch_base = "", None
    if branch.target is not None:
        target_region = region_of(regions, branch.target)
        if target_region is None:
            owner = "unmapped"
        else:
            target_image = space.image_at(branch.target)
            owner = target_image.name if target_image else target_region.describe()
            target_elf = elves.get(target_region) if target_region.file_backed else None
            if target_image is not None and target_elf is not None:
                extra["target"] = entry_name(target_image, target_region, branch.target,
                                             target_elf)
            if (target_region.executable and target_image is not None
                    and target_image.path not in (image.path, space.exe)
                    and target_elf is not None and target_elf.shared_object):
                verdict = Verdict.HOTPATCH
                reason = f"live patch: {entry} redirected into {target_image.name}"
                patch_image, patch_base = target_image.path, target_image.base
            else:
                reason += f", branches into {owner}"
    if diff.actual and diff.actual.strip(b"\xcc") == b"" and machine in (3, 62):
        # what a software breakpoint looks like; the kernel writes the same for uprobes
        tracer = ("a uprobe (the process has [uprobes])"
                  if any(r.path == "[uprobes]" for r in space.kernel_regions()) else
                  "a debugger or a uprobe")
        reason += f"; int3 breakpoint: {tracer}"
    return _finding(space, image, diff.address, len(diff.actual), verdict, reason,
                    expected=diff.expected, actual=diff.actual, disassembly=branch.text,
                    branch_target=branch.target, target_owner=owner, patch_image=patch_image,
                    patch_base=patch_base, extra=extra)


def _scan_pe(space: LiveSpace, images: list[MappedImage], modules: list[ModuleSummary],
             result: LiveScanResult, options: ScanOptions) -> list[Finding]:
    """PE images (Windows processes, Wine): the engine's path, relocated like the loader."""

    pe_modules, findings, warnings = verify_pe_images(space, images, options)
    modules += pe_modules
    result.warnings += warnings
    return findings
