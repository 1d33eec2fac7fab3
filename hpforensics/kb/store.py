"""Page-hash store: normalised digests of every executable page of every imported image, in
SQLite, keyed by (image name, TimeDateStamp, SizeOfImage, RVA) and linked to the KBs that ship
the image.

It answers two questions for the memory-image and live paths: which image versions (and KBs)
contain a page seen in memory (`lookup_digests`), and which version a module in memory is, or
the nearest one, with the pages that match none (`identify`). Digests are BLOBs; bulk writes use
executemany in large transactions with WAL; lookups go through a temporary table joined on the
digest index, in batches, so memory stays bounded whatever the store's size.
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from hpforensics.errors import InputError, UsageError
from hpforensics.kb.normalize import (
    DEFAULT_ALGO,
    NormalizedImage,
    normalize,
    normalize_headers,
    zero_digest,
)
from hpforensics.kb.store_bloom import Bloom, filter_absent
from hpforensics.kb.store_schema import SCHEMA_VERSION, create_schema, pack_mask, unpack_mask

log = logging.getLogger(__name__)

LOOKUP_BATCH = 20_000
IN_LIST = 999  # keys per statement: SQLite's variable limit before 3.32


@dataclass(frozen=True)
class ImageVersion:
    id: int
    name: str
    timestamp: int
    size_of_image: int
    checksum: int
    machine: int
    file_version: str
    path: str
    n_pages: int
    kbs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PageMatch:
    """One stored page with the digest asked about."""

    name: str
    timestamp: int
    size_of_image: int
    rva: int
    kbs: tuple[str, ...]


@dataclass
class VersionScore:
    version: ImageVersion
    matched: int  # pages whose digest equals the stored page at the same RVA
    compared: int  # pages the store has at the RVAs given


@dataclass
class ModuleMatch:
    """Which stored version a module in memory is, and which of its pages match nothing."""

    name: str
    pages: int  # pages given (all-zero pages excluded)
    best: VersionScore | None
    exact: bool  # every page given matches the best version at the same RVA
    candidates: list[VersionScore] = field(default_factory=list)
    unmatched: list[int] = field(default_factory=list)  # RVAs matching no version of the image
    elsewhere: dict[int, list[PageMatch]] = field(default_factory=dict)  # unmatched RVA -> hits

    @property
    def kbs(self) -> tuple[str, ...]:
        return self.best.version.kbs if self.best else ()


class PageStore:
    """One SQLite file. `PageStore(path)` opens an existing store; `create=True` makes one."""

    def __init__(self, path: str | Path, *, create: bool = False, algo: str = DEFAULT_ALGO) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UsageError(f"{self.path}: no such page-hash store (build one with `store build`)")
        try:
            self.db = sqlite3.connect(self.path)
            # Read before any PRAGMA: journal_mode=WAL rewrites the file header, and a database
            # that is not ours (perhaps evidence) must be left exactly as it was.
            meta = dict(self._meta_rows()) if self._has_meta() else {}
            tables = self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            foreign = not meta and tables > 0
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise InputError(self.path, f"not a page-hash store: {exc}") from None
        if not meta and (foreign or not create):
            self.db.close()
            what = "an SQLite database that is not a page-hash store" if foreign else \
                "not a page-hash store (no meta table)"
            raise InputError(self.path, what)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache, bounded
        self.db.execute("PRAGMA mmap_size=268435456")  # index reads without copies
        if not meta:
            create_schema(self.db, algo)
            meta = dict(self._meta_rows())
        if int(meta.get("schema_version", 0)) != SCHEMA_VERSION:
            found = meta.get("schema_version")
            raise InputError(self.path, f"store schema {found} is not {SCHEMA_VERSION}")
        self.algo = meta["algo"]
        self._versions: dict[int, ImageVersion] = {}
        self._bloom: Bloom | None = None
        self._bloom_state = "unloaded"  # unloaded | current | dirty | stale
        self._bulk = False  # inside bulk(): the filter is rebuilt once at the end

    # -- plumbing ---------------------------------------------------------------------------
    def _has_meta(self) -> bool:
        return bool(self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone())

    def _meta_rows(self) -> list[tuple[str, str]]:
        return self.db.execute("SELECT key, value FROM meta").fetchall()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "PageStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------
    def add_image(
        self,
        norm: NormalizedImage,
        *,
        path: str = "",
        sha256: str = "",
        file_version: str = "",
        kbs: Iterable[str] = (),
    ) -> tuple[int, bool]:
        """Store one image's pages (caller commits). Returns (image id, newly added)."""
        if norm.algo != self.algo:
            raise UsageError(f"store holds {self.algo} digests, image hashed with {norm.algo}")
        name, ts, size = norm.key
        row = self.db.execute(
            "SELECT id FROM images WHERE name=? AND timestamp=? AND size_of_image=?",
            (name, ts, size),
        ).fetchone()
        new = row is None
        if new:
            cur = self.db.execute(
                "INSERT INTO images(name, timestamp, size_of_image, checksum, machine,"
                " file_version, sha256, path, n_pages, mask) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (name, ts, size, norm.checksum, norm.machine, file_version, sha256, path,
                 len(norm.pages), pack_mask(norm.mask)),
            )
            assert cur.lastrowid is not None  # every INSERT into a rowid table sets it
            image_id = int(cur.lastrowid)
            self._bloom_add(list(norm.pages.values()))
            self.db.executemany(
                "INSERT INTO pages(digest, image_id, rva, zero) VALUES (?,?,?,?)",
                [(d, image_id, rva, int(rva in norm.zero_pages)) for rva, d in norm.pages.items()],
            )
        else:
            image_id = int(row[0])
        self.db.executemany(
            "INSERT OR IGNORE INTO image_kbs(image_id, kb) VALUES (?,?)",
            [(image_id, kb) for kb in kbs],
        )
        self._versions.pop(image_id, None)
        return image_id, new

    def bulk(self) -> "_Bulk":
        """Context for a large import: drops the digest index while writing an empty store."""
        return _Bulk(self)

    def commit(self) -> None:
        if not self._bulk:
            self._bloom_save()
        self.db.commit()

    # -- Bloom filter (absent digests answered without the index) ------------------------------
    def _pages_total(self) -> int:
        return self.db.execute("SELECT coalesce(sum(n_pages), 0) FROM images").fetchone()[0]

    def _bloom_load(self) -> Bloom | None:
        if self._bloom_state == "unloaded":
            self._bloom = Bloom.load(self.db, self._pages_total())
            self._bloom_state = "current" if self._bloom else "stale"
        return self._bloom if self._bloom_state in ("current", "dirty") else None

    def _bloom_add(self, digests: list[bytes]) -> None:
        bloom = self._bloom_load()
        if bloom is None:
            return  # stale: rebuilt from the table at the next commit
        bloom.add(digests)
        self._bloom_state = "dirty"

    def _bloom_save(self) -> None:
        """Written in the pages' own transaction, so the filter always covers every page."""
        bloom = self._bloom
        if self._bloom_state == "stale" or (self._bloom_state == "dirty" and bloom is not None
                                             and bloom.full):
            bloom = self._bloom = Bloom.rebuild(self.db, self._pages_total())
        elif self._bloom_state != "dirty":
            return
        assert bloom is not None  # "dirty" only after _bloom_add found the filter loaded
        bloom.save(self.db)
        self._bloom_state = "current"

    # -- reading ----------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        q = self.db.execute
        return {
            "images": q("SELECT count(*) FROM images").fetchone()[0],
            "pages": q("SELECT count(*) FROM pages").fetchone()[0],
            "kbs": q("SELECT count(DISTINCT kb) FROM image_kbs").fetchone()[0],
        }

    def version(self, image_id: int) -> ImageVersion:
        v = self._versions.get(image_id)
        if v is None:
            row: tuple[int, str, int, int, int, int, str, str, int] = self.db.execute(
                "SELECT id, name, timestamp, size_of_image, checksum, machine, file_version, path,"
                " n_pages FROM images WHERE id=?", (image_id,)).fetchone()
            kbs = tuple(k for (k,) in self.db.execute(
                "SELECT kb FROM image_kbs WHERE image_id=? ORDER BY kb", (image_id,)))
            v = ImageVersion(*row, kbs=kbs)
            self._versions[image_id] = v
        return v

    def versions(self, name: str) -> list[ImageVersion]:
        ids = [i for (i,) in self.db.execute(
            "SELECT id FROM images WHERE name=? ORDER BY timestamp", (name.lower(),))]
        return [self.version(i) for i in ids]

    def find(self, name: str, timestamp: int, size_of_image: int) -> ImageVersion | None:
        row = self.db.execute(
            "SELECT id FROM images WHERE name=? AND timestamp=? AND size_of_image=?",
            (name.lower(), timestamp, size_of_image)).fetchone()
        return self.version(row[0]) if row else None

    def mask_for(self, version: ImageVersion) -> bytes | list[tuple[int, int]]:
        (blob,) = self.db.execute("SELECT mask FROM images WHERE id=?", (version.id,)).fetchone()
        return unpack_mask(blob)

    def pages_of(self, version: ImageVersion) -> dict[int, tuple[bytes, bool]]:
        """Every stored page of one image version: RVA -> (normalised digest, all zero after
        masking). What the store reference (hpforensics.kb.store_references) verifies against."""
        rows = self.db.execute("SELECT rva, digest, zero FROM pages WHERE image_id=?",
                               (version.id,))
        return {int(rva): (bytes(d), bool(z)) for rva, d, z in rows}

    def iter_lookup(
        self, digests: Iterable[bytes], batch: int = LOOKUP_BATCH
    ) -> Iterator[tuple[bytes, int, int]]:
        """(digest, image id, rva) for every stored page with one of `digests`, batch by batch.
        All-zero pages are skipped: they match every image and tell nothing."""
        chunk: list[bytes] = []
        bloom = self._bloom_load() if self._bloom_state != "dirty" else self._bloom
        zero = zero_digest(self.algo)
        for d in digests:
            if type(d) is not bytes:  # noqa: E721 - memoryview/bytearray from callers
                d = bytes(d)
            if d != zero:
                chunk.append(d)
            if len(chunk) >= batch:
                yield from self._lookup_chunk(chunk, bloom)
                chunk = []
        if chunk:
            yield from self._lookup_chunk(chunk, bloom)

    def _lookup_chunk(
        self, chunk: list[bytes], bloom: Bloom | None = None
    ) -> list[tuple[bytes, int, int]]:
        # Sorted keys walk the digest index in order (cache-friendly); IN-lists of a few hundred
        # keys keep the per-statement overhead low without a temporary table.
        chunk = filter_absent(bloom, chunk)
        chunk.sort()
        out: list[tuple[bytes, int, int]] = []
        for i in range(0, len(chunk), IN_LIST):
            keys = chunk[i:i + IN_LIST]
            out += self.db.execute(
                "SELECT digest, image_id, rva FROM pages WHERE digest IN "
                f"({','.join('?' * len(keys))})",
                keys).fetchall()
        return out

    def lookup_digests(
        self, digests: Iterable[bytes], batch: int = LOOKUP_BATCH
    ) -> dict[bytes, list[PageMatch]]:
        """For each digest that the store holds, every image page (and its KBs) that has it."""
        out: dict[bytes, list[PageMatch]] = {}
        for digest, image_id, rva in self.iter_lookup(digests, batch):
            v = self.version(image_id)
            match = PageMatch(v.name, v.timestamp, v.size_of_image, rva, v.kbs)
            out.setdefault(digest, []).append(match)
        return out

    def identify(self, name: str, pages: dict[int, bytes], zero: Iterable[int] = ()) -> ModuleMatch:
        """Score every stored version of `name` against the pages of a module (RVA -> normalised
        digest); if the store has no version of that name, score the images its pages hit."""
        skip = set(zero)
        given = {rva: bytes(d) for rva, d in pages.items() if rva not in skip}
        by_digest: dict[bytes, list[int]] = {}
        for rva, d in given.items():
            by_digest.setdefault(d, []).append(rva)
        hits: dict[int, set[int]] = {}  # image id -> RVAs that match at the same RVA
        anywhere: dict[int, list[PageMatch]] = {}
        for digest, image_id, rva in self.iter_lookup(by_digest):
            for page_rva in by_digest[digest]:
                if page_rva == rva:
                    hits.setdefault(image_id, set()).add(page_rva)
                v = self.version(image_id)
                anywhere.setdefault(page_rva, []).append(
                    PageMatch(v.name, v.timestamp, v.size_of_image, rva, v.kbs))
        candidates = self.versions(name) or [self.version(i) for i in hits]
        scores = []
        for v in candidates:
            stored = self._stored_rvas(v.id)
            scores.append(VersionScore(v, len(hits.get(v.id, ())), len(stored & given.keys())))
        scores.sort(key=lambda s: (s.matched, -abs(s.compared - len(given)), s.version.timestamp),
                    reverse=True)
        best = scores[0] if scores and scores[0].matched else (scores[0] if scores else None)
        matched_any: set[int] = set().union(*(hits.get(s.version.id, set()) for s in scores))
        unmatched = sorted(set(given) - matched_any)
        return ModuleMatch(
            name=name,
            pages=len(given),
            best=best,
            exact=best is not None and best.matched == len(given) == best.compared,
            candidates=scores,
            unmatched=unmatched,
            elsewhere={rva: anywhere[rva] for rva in unmatched if rva in anywhere},
        )

    def identify_image(
        self, data: bytes, name: str, *, mapped: bool = False, path: str | None = None
    ) -> ModuleMatch:
        """Normalise a PE file (or a mapped memory copy) and identify it. A memory copy of a
        version the store holds is masked with that version's stored mask."""
        mask = None
        if mapped:
            head = normalize_headers(data, path or name)
            known = self.find(name, *head) if head else None
            mask = self.mask_for(known) if known else None
        norm = normalize(data, name, path=path, mapped=mapped, algo=self.algo, mask=mask)
        return self.identify(name, norm.pages, norm.zero_pages)

    def _stored_rvas(self, image_id: int) -> set[int]:
        rows = self.db.execute("SELECT rva FROM pages WHERE image_id=?", (image_id,))
        return {rva for (rva,) in rows}


class _Bulk:
    def __init__(self, store: PageStore) -> None:
        self.store = store
        self.dropped = False

    def __enter__(self) -> PageStore:
        db = self.store.db
        # one full rebuild at the end beats growing the filter image by image
        self.store._bulk, self.store._bloom_state = True, "stale"
        if db.execute("SELECT count(*) FROM (SELECT 1 FROM pages LIMIT 1)").fetchone()[0] == 0:
            db.execute("DROP INDEX IF EXISTS pages_digest")  # one sort at the end beats 1M inserts
            self.dropped = True
        return self.store

    def __exit__(self, *exc: object) -> None:
        db = self.store.db
        if self.dropped:
            db.execute("CREATE INDEX IF NOT EXISTS pages_digest ON pages(digest)")
        self.store._bulk = False
        self.store.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
