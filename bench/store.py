"""Page-hash store throughput: import pages/s and lookups/s on 1 M pages, against a plain
Python dict-and-sqlite3 baseline (one INSERT / SELECT per page, hex TEXT digests, index built
up front) run side by side on the same input. Then the full pipeline on real DLLs.

    .venv/bin/python bench/store.py [--pages 1000000] [--lookups 200000] [--files 200]
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpforensics.kb.normalize import NormalizedImage  # noqa: E402
from hpforensics.kb.store import PageStore  # noqa: E402
from hpforensics.kb.store_build import build  # noqa: E402

PAGES_PER_IMAGE = 500


def synthetic(n_pages: int, seed: int = 7) -> list[NormalizedImage]:
    rnd = random.Random(seed)
    images = []
    for i in range(n_pages // PAGES_PER_IMAGE):
        pages = {0x1000 * (j + 1): rnd.randbytes(32) for j in range(PAGES_PER_IMAGE)}
        images.append(NormalizedImage(f"img{i % 97}.dll", 0x60000000 + i,
                                      0x200000 + 0x1000 * (i % 13), 0x1234, 0x8664,
                                      0x180000000, "sha256", [], pages))
    return images


def ours_import(db: Path, images: list[NormalizedImage]) -> float:
    t = time.perf_counter()
    with PageStore(db, create=True) as store, store.bulk():
        for i, img in enumerate(images):
            store.add_image(img, kbs=["KB5052105"])
            if i % 200 == 199:
                store.commit()
    return time.perf_counter() - t


def baseline_import(db: Path, images: list[NormalizedImage]) -> float:
    t = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE pages(image_id INTEGER, rva INTEGER, digest TEXT)")
    con.execute("CREATE INDEX d ON pages(digest)")
    ids: dict[tuple[str, int, int], int] = {}
    for img in images:
        image_id = ids.setdefault(img.key, len(ids) + 1)
        for rva, digest in img.pages.items():
            con.execute("INSERT INTO pages VALUES (?,?,?)", (image_id, rva, digest.hex()))
    con.commit()
    con.close()
    return time.perf_counter() - t


def ours_lookup(db: Path, queries: list[bytes]) -> tuple[float, int]:
    with PageStore(db) as store:
        sum(1 for _ in store.iter_lookup(queries[:20_000]))  # warm the page cache, as the baseline
        t = time.perf_counter()
        hits = sum(1 for _ in store.iter_lookup(queries))
        return time.perf_counter() - t, hits


def baseline_lookup(db: Path, queries: list[bytes]) -> tuple[float, int]:
    con = sqlite3.connect(db)
    for q in queries[:20_000]:  # same warm-up as ours
        con.execute("SELECT image_id, rva FROM pages WHERE digest=?", (q.hex(),)).fetchall()
    t = time.perf_counter()
    hits = 0
    for q in queries:
        rows = con.execute("SELECT image_id, rva FROM pages WHERE digest=?", (q.hex(),)).fetchall()
        hits += len(rows)
    con.close()
    return time.perf_counter() - t, hits


def real_files(tmp: Path, count: int) -> tuple[Path, int]:
    """`count` distinct versions of the real DLLs (TimeDateStamp bumped per copy)."""
    src = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "pe").glob("*.dll"))
    out = tmp / "files"
    out.mkdir()
    total = 0
    for i in range(count):
        f = src[i % len(src)]
        data = bytearray(f.read_bytes())
        pe_off = struct.unpack_from("<I", data, 0x3C)[0]
        struct.pack_into("<I", data, pe_off + 8, 0x50000000 + i)
        (out / f"{i:05d}_{f.name}").write_bytes(data)
        total += len(data)
    return out, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=200_000)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hpf-bench-"))
    try:
        images = synthetic(args.pages)
        n = sum(len(i.pages) for i in images)
        rnd = random.Random(11)
        present = [d for img in rnd.sample(images, min(len(images), 1 + args.lookups // 50))
                   for d in list(img.pages.values())[:50]][: args.lookups * 3 // 4]
        queries = present + [rnd.randbytes(32) for _ in range(args.lookups - len(present))]
        rnd.shuffle(queries)

        t_ours = ours_import(tmp / "ours.db", images)
        t_base = baseline_import(tmp / "base.db", images)
        # Interleaved rounds, best of each: other processes on the machine hit both sides alike.
        rounds = [(ours_lookup(tmp / "ours.db", queries), baseline_lookup(tmp / "base.db", queries))
                  for _ in range(args.rounds)]
        l_ours, h_ours = min(r[0] for r in rounds)
        l_base, h_base = min(r[1] for r in rounds)
        only = [(ours_lookup(tmp / "ours.db", present), baseline_lookup(tmp / "base.db", present))
                for _ in range(args.rounds)]
        p_ours = min(r[0][0] for r in only)
        p_base = min(r[1][0] for r in only)
        assert h_ours == h_base == len(present), (h_ours, h_base, len(present))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        files, size = real_files(tmp, args.files)
        with PageStore(tmp / "real.db", create=True) as store:
            report = build(store, [files], ["KB5052105"])
        print(f"page-hash store, {n:,} pages ({len(images):,} images), {len(queries):,} lookups "
              f"({len(present):,} present), lookups best of {args.rounds} interleaved rounds")
        print(f"{'':24}{'hpforensics':>14}{'baseline':>14}{'ratio':>8}")
        print(f"{'import pages/s':24}{n / t_ours:>14,.0f}{n / t_base:>14,.0f}"
              f"{t_base / t_ours:>7.1f}x")
        print(f"{'lookups/s':24}{len(queries) / l_ours:>14,.0f}{len(queries) / l_base:>14,.0f}"
              f"{l_base / l_ours:>7.1f}x")
        print(f"{'lookups/s, all present':24}{len(present) / p_ours:>14,.0f}"
              f"{len(present) / p_base:>14,.0f}{p_base / p_ours:>7.1f}x")
        print(f"{'store size MiB':24}{os.path.getsize(tmp / 'ours.db') / 2**20:>14.1f}"
              f"{os.path.getsize(tmp / 'base.db') / 2**20:>14.1f}")
        print(f"peak RSS of this process: {rss:,.0f} MiB")
        print(f"real DLLs: {args.files} files ({size / 2**20:.0f} MiB), {report.pages:,} pages in "
              f"{report.seconds:.1f} s = {args.files / report.seconds:,.0f} files/s, "
              f"{report.pages / report.seconds:,.0f} pages/s ({os.cpu_count()} workers)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
