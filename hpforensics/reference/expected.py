"""The expected image: an on-disk PE laid out and relocated as the Windows loader would, plus
the mask of every byte the loader or kernel legitimately rewrites, each range with its kind.

Work is split so repeated use is cheap: a `Template` (layout + masks, independent of the load
base) is built once per file; an `ExpectedImage` for a given base is a copy of the template's
layout with relocations applied in one numpy pass. Both are cached.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hpforensics.errors import InputError
from hpforensics.evidence import check_regular, map_evidence
from hpforensics.reference.functions import exports, pdata_functions
from hpforensics.reference.headers import Headers, parse_headers
from hpforensics.reference.imports import ImportSlots, import_slots
from hpforensics.reference.kinds import MaskKind
from hpforensics.reference.loadconfig import load_config_masks, reader_for
from hpforensics.reference.maskset import MaskSet
from hpforensics.reference.relocs import REL_HIGHADJ, WIDTH, apply_relocations, parse_relocations

log = logging.getLogger(__name__)

PAGE = 0x1000
SUBSYSTEM_NATIVE = 1


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)


@dataclass(eq=False)
class Template:
    """Everything about one file that does not depend on where it is loaded."""

    path: str
    name: str
    headers: Headers
    layout: bytes  # sections at their RVAs, zero-filled, not relocated
    masks: MaskSet
    reloc_rvas: np.ndarray
    reloc_types: np.ndarray
    iat: ImportSlots
    delay_iat: ImportSlots
    scope_ranges: list[tuple[int, int]]
    exec_ranges: list[tuple[int, int]]
    compare_bitmap: bytes  # runtime-valued loader bytes + bytes outside the compared scope
    load_config: Any  # hpforensics.pe.loadconfig.LoadConfig | None
    hotpatch: Any  # hpforensics.pe.hotpatch.HotPatchInfo | None: set for patch images
    warnings: list[str]
    file_data: Any  # the file bytes (mmap), kept for PE-model parsing on demand
    functions: np.ndarray  # (n, 2) int64 [begin, end) RVAs from .pdata (or exports), sorted
    exports: dict[int, str]
    # Non-zero file bytes between a section's VirtualSize and SizeOfRawData that fall inside
    # its last mapped page: [(rva, bytes, n)], n of them up to VirtualSize rounded to
    # FileAlignment. `layout` zero-fills them; what the loader maps there is disputed
    # (docs/engine.md), so the classifier accepts zeros, the first n bytes, or all of them.
    tails: list[tuple[int, bytes, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.headers.size_of_image

    @cached_property
    def mask_bitmap(self) -> bytes:
        """Every loader-written byte, relocations included (what page-hash stores mask)."""
        return self.masks.bitmap().tobytes()


@dataclass(eq=False)
class ExpectedImage:
    """What memory should hold for `template` loaded at `base`."""

    template: Template
    base: int
    data: bytes
    warnings: list[str] = field(default_factory=list)
    # Set by providers that verify by page digest (hpforensics.kb.store_references) rather than
    # bytes: how summaries name the reference, pages whose digest matches no known version
    # (page RVA -> reason; whole page unexplained, redirects in it still classified), pages
    # counted unavailable although read (page RVA -> reason), and patch-table slots whose
    # expected bytes are a placeholder (a failed check there is not evidence).
    reference: str = ""
    unmatched_pages: dict[int, str] = field(default_factory=dict)
    absent_pages: dict[int, str] = field(default_factory=dict)
    unverifiable_pages: dict[int, str] = field(default_factory=dict)  # redirects still judged
    guessed_ranges: list[tuple[int, int]] = field(default_factory=list)  # placeholder bytes

    # the shared interface names ------------------------------------------------------------
    @property
    def mask(self) -> bytes:
        return self.template.mask_bitmap

    @cached_property
    def mask_ranges(self) -> list[tuple[int, int, str]]:
        return self.template.masks.ranges()

    @property
    def exec_ranges(self) -> list[tuple[int, int]]:
        return self.template.exec_ranges

    # conveniences ---------------------------------------------------------------------------
    @property
    def compare_mask(self) -> bytes:
        return self.template.compare_bitmap

    @property
    def scope_ranges(self) -> list[tuple[int, int]]:
        return self.template.scope_ranges

    @property
    def size(self) -> int:
        return self.template.size

    @property
    def path(self) -> str:
        return self.template.path

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def headers(self) -> Headers:
        return self.template.headers

    @property
    def timestamp(self) -> int:
        return self.template.headers.timestamp

    @property
    def checksum(self) -> int:
        return self.template.headers.checksum

    @property
    def masks(self) -> MaskSet:
        return self.template.masks

    def function_at(self, rva: int) -> int | None:
        """Start RVA of the function (per .pdata) holding `rva`, if any."""
        f = self.template.functions
        i = int(np.searchsorted(f[:, 0], rva, side="right")) - 1
        return int(f[i, 0]) if i >= 0 and rva < f[i, 1] else None

    def is_executable(self, rva: int) -> bool:
        return any(a <= rva < b for a, b in self.template.exec_ranges)


def section_tails(data: Any, hdr: Headers) -> list[tuple[int, bytes, int]]:
    """File padding past VirtualSize inside each section's last page, where it is not zero."""
    out = []
    for s in hdr.sections:
        raw = s.raw_offset & ~0x1FF if hdr.file_alignment >= 0x200 else s.raw_offset
        start = s.va + s.vsize
        end = min(s.va + s.raw_size, s.va + _align(s.vsize, PAGE), hdr.size_of_image,
                  s.va + len(data) - raw)
        if s.vsize and end > start:
            pad = bytes(data[raw + s.vsize : raw + (end - s.va)])
            if any(pad):
                to_falign = _align(s.vsize, max(hdr.file_alignment, 1)) - s.vsize
                out.append((start, pad, min(to_falign, len(pad))))
    return out


def _layout(data: Any, hdr: Headers) -> bytearray:
    img = bytearray(hdr.size_of_image)
    n = min(hdr.size_of_headers, len(data), hdr.size_of_image)
    img[:n] = data[:n]
    for s in hdr.sections:
        raw = s.raw_offset & ~0x1FF if hdr.file_alignment >= 0x200 else s.raw_offset
        # Copied: min(VirtualSize, SizeOfRawData), the rest zero-filled. File padding past
        # VirtualSize ("PADDINGXXPADDING") may or may not be mapped: see `section_tails`.
        n = min(s.raw_size, s.vsize, hdr.size_of_image - s.va, len(data) - raw)
        if n > 0:
            img[s.va : s.va + n] = data[raw : raw + n]
    return img


def _scope(hdr: Headers) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(compared ranges, executable ranges). Writable data changes at run time and is not
    compared unless it is also executable; a driver's discardable sections are freed."""
    scope = [(0, min(_align(hdr.size_of_headers, PAGE), hdr.size_of_image))]
    execs = []
    for s in hdr.sections:
        span = (s.va, min(s.va + _align(s.vsize, PAGE), hdr.size_of_image))
        if s.executable:
            execs.append(span)
        if s.discardable and hdr.subsystem == SUBSYSTEM_NATIVE:
            continue
        if s.executable or not s.writable:
            scope.append(span)
    return sorted(scope), sorted(execs)


def build_template(data: Any, path: str, name: str | None = None) -> Template:
    """Parse and lay out a file-layout PE; InputError (file + offset) when it is malformed."""
    hdr = parse_headers(data, path)
    img = _layout(data, hdr)
    warnings: list[str] = []
    masks = MaskSet(hdr.size_of_image)
    rvas, types = parse_relocations(img, hdr, path)
    widths = np.asarray([WIDTH.get(int(t), 8) for t in range(16)], np.int64)[types]
    known = np.isin(types, [t for t in WIDTH if t != REL_HIGHADJ])
    masks.add(MaskKind.RELOCATION, rvas[known], widths[known])
    # Types we do not apply (ARM MOV32 pairs, MIPS, RISC-V): masked, not reported as changes.
    masks.add(MaskKind.DYNAMIC_OTHER, rvas[~known], widths[~known])
    # The memory manager stores the actual load address in the mapped header's ImageBase.
    masks.add(MaskKind.HEADER_IMAGE_BASE, [_image_base_offset(hdr)], hdr.pointer_size)
    iat, delay = import_slots(img, hdr, warnings)
    ps = hdr.pointer_size
    masks.add(MaskKind.IAT, iat.rvas, ps)
    masks.add(MaskKind.DELAY_IAT, delay.rvas, ps)
    masks.add(MaskKind.DELAY_HANDLE, delay.handle_rvas, ps)
    tls_rva, _ = hdr.directory(9)
    load_config, hotpatch = load_config_masks(reader_for(data, path, hdr), hdr, masks)
    if tls_rva and tls_rva + 3 * ps + 4 <= len(img):
        index_va = int.from_bytes(img[tls_rva + 2 * ps : tls_rva + 3 * ps], "little")
        if hdr.image_base <= index_va < hdr.image_base + hdr.size_of_image:
            masks.add(MaskKind.TLS_INDEX, [index_va - hdr.image_base], 4)
    functions = pdata_functions(img, hdr)
    names = exports(img, hdr)
    if not len(functions) and names:
        starts = np.asarray(sorted(names), np.int64)
        functions = np.stack([starts, np.r_[starts[1:], hdr.size_of_image]], axis=1)
    scope, execs = _scope(hdr)
    # Out-of-scope pages are whole bitmap bytes; runtime slots are set bit by bit.
    outside = np.full((hdr.size_of_image + 7) // 8, 0xFF, np.uint8)
    for a, b in scope:
        outside[a >> 3 : (b + 7) >> 3] = 0
    compare = masks.bitmap(masks.runtime_kinds(), outside)
    for w in warnings:
        log.warning("%s: %s", path, w)
    return Template(
        path=path, name=name or Path(path).name, headers=hdr, layout=bytes(img), masks=masks,
        reloc_rvas=rvas, reloc_types=types, iat=iat, delay_iat=delay, scope_ranges=scope,
        exec_ranges=execs, compare_bitmap=compare.tobytes(), load_config=load_config,
        hotpatch=hotpatch, functions=functions, exports=names, warnings=warnings,
        file_data=data, tails=section_tails(data, hdr),
    )


def _image_base_offset(hdr: Headers) -> int:
    return hdr.optional_offset + (24 if hdr.is64 else 28)


def expected_from_template(t: Template, base: int) -> ExpectedImage:
    img = bytearray(t.layout)
    delta = base - t.headers.image_base
    apply_relocations(img, t.reloc_rvas, t.reloc_types, delta)
    at, ps = _image_base_offset(t.headers), t.headers.pointer_size
    if at + ps <= len(img):
        img[at : at + ps] = (base & ((1 << (8 * ps)) - 1)).to_bytes(ps, "little")
    return ExpectedImage(t, base, bytes(img), list(t.warnings))


class _Cache:
    """LRU bounded by bytes; thread-safe so the live scanner may verify in parallel."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.used = 0
        self.lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            hit = self.items.get(key)
            if hit is None:
                return None
            self.items.move_to_end(key)
            return hit[0]

    def put(self, key: Any, value: Any, cost: int) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = (value, cost)
            self.used += cost
            while self.used > self.budget and len(self.items) > 1:
                _, (_, c) = self.items.popitem(last=False)
                self.used -= c

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.used = 0


TEMPLATES = _Cache(int(os.environ.get("HPF_TEMPLATE_CACHE_MB", "768")) << 20)
EXPECTED = _Cache(int(os.environ.get("HPF_EXPECTED_CACHE_MB", "256")) << 20)


def template_for_file(path: str | os.PathLike[str]) -> Template:
    check_regular(path)  # a FIFO or device is refused under the name it was given
    p = os.path.realpath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise InputError(path, exc.strerror or "cannot stat") from None
    key = (str(path), p, st.st_mtime_ns, st.st_size)  # the given path names the reference
    t = TEMPLATES.get(key)
    if t is None:
        t = build_template(map_evidence(p), str(path))
        TEMPLATES.put(key, t, 2 * t.size)
    return t


def build_expected(pe: Any, base: int, *, name: str | None = None) -> ExpectedImage:
    """Expected image of `pe` (a path, file bytes, or an object with `.path`) loaded at `base`.

    Cached per (file, base) for paths; bytes are not cached.
    """
    if isinstance(pe, (str, os.PathLike)):
        t = template_for_file(pe)
    elif isinstance(pe, (bytes, bytearray, memoryview)):
        t = build_template(bytes(pe), name or "<bytes>", name)
    elif getattr(pe, "path", None):
        t = template_for_file(pe.path)
    else:
        raise TypeError(f"cannot build an expected image from {type(pe).__name__}")
    return expected_for_template(t, base)


def expected_for_template(t: Template, base: int) -> ExpectedImage:
    key = (id(t), t.path, base)
    e = EXPECTED.get(key)
    if e is None or e.template is not t:
        e = expected_from_template(t, base)
        EXPECTED.put(key, e, t.size)
    return e
