"""Where page digests of known image versions come from: the page-hash store or KB manifests
that carry page hashes (both written by hpforensics.kb, normalised by hpforensics.kb.normalize).

A source answers one question for `PageReferences`: for an image version (name, TimeDateStamp,
SizeOfImage), the normalised digest of each of its executable pages, the loader mask they were
taken with when it was stored, and which KBs ship it.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol, Sequence
from hpforensics.kb.normalize import hash_image_pages
from hpforensics.kb.normalize import zero_digest
from hpforensics.kb.store import PageStore
from hpforensics.kb.manifest import FORMAT, load, manifest_paths

log = logging.getLogger(__name__)


@dataclass
class KnownPages:
    """The stored normalisation of one image version."""

    label: str  # ModuleSummary.reference: "store:<db>:<name>/<timestamp>/<KB>"
    where: str  # "store" / "manifest": how a reason names the source
    algo: str
    mask: bytes | list[tuple[int, int]] | None  # stored loader mask; None: from the headers
    digests: dict[int, bytes]  # page RVA -> normalised digest
    zero: set[int] = field(default_factory=set)  # stored pages all zero after masking


def page_digests(image: bytes, rvas: Sequence[int], mask, algo: str) -> dict[int, bytes]:
    """Normalised digests of `rvas`: the store's own hashing (hpforensics.kb.normalize), over
    the memory layout with the given loader mask."""

    digests, _ = hash_image_pages(image, list(rvas), mask, algo)
    return digests


class PageSource(Protocol):
    def pages_for(self, name: str, timestamp: int, size_of_image: int) -> KnownPages | None:
        """The stored pages of this version, or None when the source does not hold it."""

    def elsewhere(self, digests: Sequence[bytes]) -> dict[bytes, list[str]]:
        """For digests that match no page of the identified version: where else they occur
        ("name/0xTIMESTAMP+0xRVA"), to say what a changed page looks like."""


def _zero_pages(digests: dict[int, bytes], algo: str) -> set[int]:
    """Pages stored as all zero after masking: their digest is the zero page's."""

    zero = zero_digest(algo)
    return {rva for rva, d in digests.items() if d == zero}


def _label(prefix: str, source: str, name: str, timestamp: int, kbs: Iterable[str]) -> str:
    return f"{prefix}:{source}:{name}/{timestamp:#x}/{'+'.join(kbs) or 'no-KB'}"


class StorePages:
    """A page-hash store (`hpforensics store build`), opened read-only for lookups."""

    def __init__(self, path: str | Path) -> None:

        self.path = Path(path)
        self.store = PageStore(self.path)
        self._lock = threading.Lock()  # one SQLite connection; the live scanner may share it

    def pages_for(self, name: str, timestamp: int, size_of_image: int) -> KnownPages | None:
        with self._lock:
            version = self.store.find(name, timestamp, size_of_image)
            if version is None:
                others = self.store.versions(name)
                if others:
                    log.info("%s: store holds TimeDateStamps %s, not %#x", name,
                             ", ".join(f"{v.timestamp:#x}" for v in others), timestamp)
                return None
            mask = self.store.mask_for(version)
            pages = self.store.pages_of(version)
        return KnownPages(
            label=_label("store", str(self.path), version.name, version.timestamp, version.kbs),
            where="store", algo=self.store.algo, mask=mask,
            digests={rva: d for rva, (d, _) in pages.items()},
            zero={rva for rva, (_, z) in pages.items() if z})

    def elsewhere(self, digests: Sequence[bytes]) -> dict[bytes, list[str]]:
        with self._lock:
            hits = self.store.lookup_digests(digests)
        return {d: [f"{m.name}/{m.timestamp:#x}+{m.rva:#x}" for m in ms] for d, ms in hits.items()}


class ManifestPages:
    """KB manifests (files or folders) whose file entries carry page hashes. Plain name -> KB
    mappings and manifests without pages are passed over: they name KBs, not code."""

    def __init__(self, paths: Iterable[str | Path]) -> None:

        roots = [Path(x) for x in paths]
        self.label_source = ",".join(map(str, roots))
        self._by_image: dict[tuple[str, int, int], tuple[list[str], object]] = {}
        for p in manifest_paths(roots):
            try:
                head = p.read_text(encoding="utf-8-sig", errors="replace")
            except OSError:
                continue
            if f'"{FORMAT}"' not in head:
                continue  # a plain name -> KB mapping: the KB lookup reads it
            m = load(p)
            for f in m.files:
                if f.pe is None or f.pages is None:
                    continue
                key = (f.name.lower(), f.pe.timestamp, f.pe.size_of_image)
                kbs, _ = self._by_image.setdefault(key, ([], f))
                kbs.extend(k for k in m.kbs if k not in kbs)

    def __len__(self) -> int:
        return len(self._by_image)

    def pages_for(self, name: str, timestamp: int, size_of_image: int) -> KnownPages | None:
        hit = self._by_image.get((name.lower(), timestamp, size_of_image))
        if hit is None:
            return None
        kbs, f = hit
        pages = f.pages  # type: ignore[attr-defined]
        if pages.page_size != 4096:
            log.warning("%s: manifest pages of %d bytes are not comparable", name, pages.page_size)
            return None
        digests = {rva: bytes.fromhex(d) for rva, d in pages.digests.items()}
        return KnownPages(
            label=_label("manifest", self.label_source, f.name, timestamp, kbs),  # type: ignore
            where="manifests", algo=pages.algo, mask=None, digests=digests,
            zero=_zero_pages(digests, pages.algo))

    def elsewhere(self, digests: Sequence[bytes]) -> dict[bytes, list[str]]:
        want = set(digests)
        out: dict[bytes, list[str]] = {}
        for (name, ts, _), (_, f) in self._by_image.items():
            for rva, d in f.pages.digests.items():  # type: ignore[attr-defined]
                raw = bytes.fromhex(d)
                if raw in want:
                    out.setdefault(raw, []).append(f"{name}/{ts:#x}+{rva:#x}")
        return out
