"""Verifying a module by page digest when no file on disk matches it (hotpatch months: the file
on disk is not what runs): the page-hash store, or KB manifests that carry page hashes.

For a module in memory: its identity (name, TimeDateStamp, SizeOfImage) from the mapped
header; the stored pages of that version; the module's executable pages hashed exactly as the
store hashed the file (memory layout, the stored loader mask, `hpforensics.kb.normalize`'s
`hash_image_pages`). A page that does not match is retried with the hotpatch engine's writes
undone — a redirect at F gets the function's first bytes back from the patch table of a patch
image mapped in the same space and the padding before F, patch-table slots their zero
placeholders — and is verified when it then matches: the classifier sees only those bytes
changed and judges each redirect through the whole HPAT chain. A page that still matches no
version is unexplained as a whole ("page matches no known version in the store"), with any
redirect in it classified as usual.

The expected image handed to the classifier is the module's own memory with those edits, its
runtime loader slots zeroed (so IAT and CFG pointers are still checked for where they lead) and
a compared scope of exactly the stored pages: bytes the store cannot vouch for are not counted.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from hpforensics.errors import InputError
from hpforensics.kb.known_pages import KnownPages, PageSource, page_digests
from hpforensics.reference.disk import identity_of
from hpforensics.reference.expected import PAGE, ExpectedImage, Template, _Cache, build_template
from hpforensics.reference.kinds import POINTER_VALUE, MaskKind
from hpforensics.kb.unpatch import redirect_edits, restore_page, slot_edits
from hpforensics.space import AddressSpace, MappedImage
from hpforensics.pagehash import ranges_to_bitmap, xxh3_128
from hpforensics.reference.headers import parse_headers
from hpforensics.kb.known_pages import ManifestPages, StorePages
from hpforensics.reference.disk import DiskReferences
from hpforensics.reference.provider import ChainReferences
from hpforensics.reference.patches import collect_patches
from hpforensics.kb.normalize import parse_pe

log = logging.getLogger(__name__)

ZERO_PAGE = "page reads as all zeros (likely not acquired)"
UNNORMALISED = ("page not verifiable: its loader mask comes from directories in pages the "
                "source lacks, and the reference stores none")
EXPECTED = _Cache(64 << 20)  # identical copies of a module (one per process) are built once


def _bitmap(mask, size: int) -> bytes:
    n = (size + 7) // 8
    if isinstance(mask, (bytes, bytearray, memoryview)):
        return bytes(mask[:n]).ljust(n, b"\0")

    return ranges_to_bitmap([(a, min(b, size)) for a, b in mask if a < size], size)


class PageReferences:
    """A `ReferenceProvider` over a `PageSource` (StorePages, ManifestPages)."""

    def __init__(self, source: PageSource) -> None:
        self.source = source
        self._spaces: OrderedDict[int, tuple[AddressSpace, list]] = OrderedDict()
        self._lock = threading.Lock()

    def label(self, expected: ExpectedImage) -> str:
        return expected.reference

    # -- the patch images mapped in a space, from their own headers ---------------------------
    def _patches(self, space: AddressSpace) -> list:

        with self._lock:
            hit = self._spaces.get(id(space))
            if hit is not None and hit[0] is space:
                return hit[1]
        patches = collect_patches(space, list(space.images()), lambda m: None)
        with self._lock:
            self._spaces[id(space)] = (space, patches)  # the space is kept: ids stay unique
            while len(self._spaces) > 4:
                self._spaces.popitem(last=False)
        return patches

    # -- the provider ---------------------------------------------------------------------------
    def expected_for(self, image: MappedImage, space: AddressSpace) -> ExpectedImage | None:
        head = space.read_exact(image.base, PAGE)
        ident = identity_of(head) if head else None
        if ident is None:
            return None
        known = self.source.pages_for(image.name, ident.timestamp, ident.size_of_image)
        if known is None:
            return None
        size = ident.size_of_image
        read = space.read(image.base, size)
        data = bytes(read.data[:size]).ljust(size, b"\0")
        present = np.zeros((size + PAGE - 1) // PAGE, bool)
        present[: len(read.present)] = np.asarray(read.present[: len(present)], bool)
        patches = self._patches(space)
        mine = [p for p in patches if p.image.base == image.base
                or p.base_for(ident.timestamp, ident.checksum) is not None]
        key = (image.name.lower(), image.path, image.base, known.label,
               _content_key(data, image.path or image.name), present.tobytes(),
               tuple((p.image.base, p.image.size, p.sequence) for p in mine))
        exp = EXPECTED.get(key)
        if exp is None:
            exp = _Builder(image, data, present, known, mine, self.source.elsewhere).build()
            EXPECTED.put(key, exp, 2 * size)
        return exp


def _content_key(data: bytes, path: str) -> bytes:
    """Digest of everything but writable data: the same DLL in the next process differs there
    (its globals) and nowhere the expected image is judged on, so it is built once."""
    # XXH3-128 by the C core, of the kept pieces joined (the same digest as xxhash's streaming
    # hasher over them: xxhash is not a dependency of the package, only of its tests and bench)
    view = memoryview(data)
    try:
        hdr = parse_headers(data, path)
    except InputError:
        return xxh3_128(view)
    pieces = []
    done = 0
    for sec in sorted(hdr.sections, key=lambda x: x.va):
        if sec.writable and not sec.executable:
            start, end = sec.va, min(sec.va + (sec.vsize + PAGE - 1) // PAGE * PAGE, len(data))
            if start >= done:
                pieces.append(view[done:start])
                done = max(done, end)
    pieces.append(view[done:])
    return xxh3_128(b"".join(pieces))


class _Builder:
    def __init__(self, image: MappedImage, data: bytes, present: np.ndarray, known: KnownPages,
                 patches: list, elsewhere) -> None:
        self.image, self.data, self.present, self.known = image, data, present, known
        self.patches = patches
        self.elsewhere = elsewhere  # PageSource.elsewhere
        self.size = len(data)
        self.lost: list[int] = []  # data directories unreadable in memory

    def template(self) -> Template:

        path = self.image.path or self.image.name
        # the same file-like view of a memory copy that the store's normaliser builds
        view = parse_pe(self.data, path, mapped=True)
        try:
            return build_template(bytes(view.__data__), path, self.image.name)
        except InputError as exc:
            if self.present.all():
                raise
            # A directory in a page the source lacks reads as zeros: drop the directories
            # that lie there and keep the rest (the hashes use the stored mask anyway).
            lost = []
            for i, d in enumerate(view.OPTIONAL_HEADER.DATA_DIRECTORY):
                first, last = d.VirtualAddress // PAGE, (d.VirtualAddress + d.Size - 1) // PAGE
                if d.VirtualAddress and d.Size and not self.present[first : last + 1].all():
                    d.VirtualAddress, d.Size = 0, 0
                    lost.append(i)
            if not lost:
                raise
            t = build_template(bytes(view.write()), path, self.image.name)
            self.lost = lost
            t.warnings.append(f"data directories {lost} lie in pages the source lacks ({exc}); "
                              "their slots are not checked")
            return t

    def build(self) -> ExpectedImage:
        t = self.template()
        known, size = self.known, self.size
        scope = np.zeros(len(self.present), bool)
        for a, b in t.scope_ranges:
            scope[a // PAGE : (b + PAGE - 1) // PAGE] = True
        rvas = sorted(r for r in known.digests if r < size and r % PAGE == 0 and scope[r // PAGE])
        mask = _bitmap(known.mask if known.mask is not None else t.mask_bitmap, size)
        work = bytearray(self.data)
        got = page_digests(self.data, rvas, mask, known.algo)
        as_is: set[int] = set()
        absent: dict[int, str] = {}
        unmatched: list[int] = []
        for r in rvas:
            if not self.present[r // PAGE]:
                continue  # the classifier counts it unavailable
            if got.get(r) == known.digests[r]:
                as_is.add(r)
            elif r not in known.zero and not any(work[r : r + PAGE]):
                absent[r] = ZERO_PAGE
            else:
                unmatched.append(r)
        slots = slot_edits(self.patches, self.image.base, t.headers, size)
        redirects = redirect_edits(self.patches, t.headers, work) if unmatched else []
        restored = {r for r in unmatched
                    if restore_page(work, r, slots + redirects, mask, known.algo, known.digests[r])}
        unmatched = [r for r in unmatched if r not in restored]
        unverifiable: dict[int, str] = {}
        if self.lost and known.mask is None:
            # No stored mask and the headers' own is incomplete: not a verdict on the code.
            unverifiable = dict.fromkeys(unmatched, UNNORMALISED)
            unmatched = []
        data = np.frombuffer(work, np.uint8)  # work is ours: edited in place from here
        # Bound pointers (IAT, CFG) differ from the expected image, so the classifier checks
        # where each leads; other loader-written values are covered by the mask.
        self._unbind(t, data)
        guessed: list[tuple[int, int]] = []
        for e in slots:
            # Patch-table slots outside pages the digests vouch for hold their placeholder,
            # so the classifier checks what the kernel wrote against the entry; a mismatch
            # there is no evidence (the file's value is not known).
            page = e.rva - e.rva % PAGE
            if page not in as_is and page not in restored:
                data[e.rva : e.end] = 0
                guessed.append((e.rva, e.end))
        for e in redirects:
            # In a page that matches nothing the redirect is still judged link by link
            # against the first bytes the patch table keeps.
            pages = {e.rva - e.rva % PAGE, (e.end - 1) - (e.end - 1) % PAGE}
            if any(p in unverifiable or p in unmatched for p in pages):
                data[e.rva : e.end] = np.frombuffer(e.variants[0], np.uint8)
        return ExpectedImage(
            template=_scoped(t, rvas), base=self.image.base, data=data.tobytes(),
            warnings=list(t.warnings), reference=known.label,
            unmatched_pages=self._reasons(unmatched, got), absent_pages=absent,
            unverifiable_pages=unverifiable,
            guessed_ranges=guessed)

    def _unbind(self, t: Template, data: np.ndarray) -> None:
        """Zero the bound pointer slots (IAT, CFG), so the classifier checks where each leads.
        A slot with a base relocation that points into the module itself is left as it is:
        that is what the file's own default (a CFG no-op stub) becomes when relocated."""
        ps = t.headers.pointer_size
        reloc = t.masks.group(MaskKind.RELOCATION)
        relocated = np.asarray(reloc.starts if reloc is not None else [], np.int64)
        base, end = self.image.base, self.image.base + self.size
        for g in t.masks.groups:
            if g.kind not in POINTER_VALUE:
                continue
            starts, widths = g.starts, g.widths
            keep = np.zeros(len(starts), bool)
            whole = (widths == ps) & np.isin(starts, relocated) & (starts + ps <= self.size)
            if whole.any():
                at = starts[whole]
                raw = data[at[:, None] + np.arange(ps)].copy()
                values = raw.view("<u8" if ps == 8 else "<u4")[:, 0].astype(np.uint64)
                keep[whole] = (values >= np.uint64(base)) & (values < np.uint64(end))
            for w in np.unique(widths[~keep]).tolist():
                at = starts[~keep & (widths == w)]
                idx = (at[:, None] + np.arange(w)).ravel()
                data[idx[idx < self.size]] = 0

    def _reasons(self, left: list[int], digests: dict[int, bytes]) -> dict[int, str]:
        """Pages left unmatched kept their bytes: their first digests still stand."""
        if not left:
            return {}
        why = f"page matches no known version in the {self.known.where}"
        try:
            hits = self.elsewhere(list(digests.values()))
        except Exception as exc:  # noqa: BLE001 - only the detail of the reason depends on it
            log.debug("elsewhere lookup failed: %s", exc)
            hits = {}
        out = {}
        for r in left:
            seen = hits.get(digests[r], [])
            out[r] = why + (f" (same page as {', '.join(seen[:3])})" if seen else "")
        return out


def _scoped(t: Template, rvas: list[int]) -> Template:
    """The template with the compared scope cut to the stored pages."""
    scope: list[tuple[int, int]] = []
    for r in rvas:
        if scope and scope[-1][1] == r:
            scope[-1] = (scope[-1][0], r + PAGE)
        else:
            scope.append((r, r + PAGE))
    outside = np.full((t.size + 7) // 8, 0xFF, np.uint8)
    for a, b in scope:
        outside[a >> 3 : (b + 7) >> 3] = 0
    compare = t.masks.bitmap(t.masks.runtime_kinds(), outside)
    return dataclasses.replace(t, scope_ranges=scope, compare_bitmap=compare.tobytes())


def open_references(dirs: Sequence = (), store=None, manifest=None):
    """What `--reference`, `--store` and `--manifest` give the engine, in that order: files on
    disk first, then the page-hash store, then manifests with page hashes. None: nothing given.
    Missing paths and unreadable stores or manifests are user errors, raised here."""

    providers: list = []
    if dirs:
        providers.append(DiskReferences([Path(d) for d in dirs]))
    if store is not None:
        providers.append(PageReferences(StorePages(store)))
    if manifest is not None:
        pages = ManifestPages([manifest])
        if len(pages):  # a manifest without page hashes only names KBs
            providers.append(PageReferences(pages))
    if not providers:
        return None
    return providers[0] if len(providers) == 1 else ChainReferences(providers)
