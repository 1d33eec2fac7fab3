"""Store reference against the disk reference, same run, same module.

Input: bench/engine.py's scaled msvcp140.dll (2 MiB and 20 MiB, real code, relocations and load
config), loaded at another base with bound IAT, CFG pointers and three planted hooks. One store
holds the file's normalised pages (built once, not timed).

Per module: `verify_space` with the file on disk (`FileReferences`: template build, relocation,
masked compare) against `verify_space` with the page-hash store (`PageReferences`: header
parse from memory, template, page hashing with the stored mask, store lookup, classification),
both cold (every cache cleared), and the store again for an identical copy in the next process
(content-keyed cache hit). Verdicts are checked to agree on the hooked pages.

    .venv/bin/python bench/store_reference.py [--rounds N] [--sizes 2,20]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from engine import NEW_BASE, SOURCE, memory_image, scale_pe, timed  # noqa: E402

from hpforensics.engine import verify_space  # noqa: E402
from hpforensics.sources.files import FilesSpace  # noqa: E402
from hpforensics.kb.normalize import normalize  # noqa: E402
from hpforensics.kb.store import PageStore  # noqa: E402
from hpforensics.model import Verdict  # noqa: E402
from hpforensics.reference import FileReferences  # noqa: E402
from hpforensics.kb import store_references as store_ref  # noqa: E402
from hpforensics.reference.expected import EXPECTED, TEMPLATES  # noqa: E402
from hpforensics.space import MappedImage  # noqa: E402


def clear() -> None:
    TEMPLATES.clear()
    EXPECTED.clear()
    store_ref.EXPECTED.clear()


def run(refs, path: Path, memory: bytes, fakes):
    me = MappedImage(NEW_BASE, len(memory), str(path), path.name)
    space = FilesSpace([(me, memory), *fakes])
    return verify_space(space, refs, images=[me])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sizes", default="2,20", help="module sizes in MiB (approximate)")
    args = ap.parse_args()
    src = SOURCE.read_bytes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mib in (int(s) for s in args.sizes.split(",")):
            copies = max(1, round(mib * (1 << 20) / 560_000))
            path = Path(tmp) / f"msvcp140x{copies}.dll"
            path.write_bytes(scale_pe(src, copies))
            memory, fakes, hooks = memory_image(path)
            db = PageStore(Path(tmp) / f"s{copies}.db", create=True)
            db.add_image(normalize(path.read_bytes(), path.name), kbs=["KB0000000"])
            db.commit()
            disk = FileReferences({NEW_BASE: str(path)})
            store = store_ref.open_references([], db.path)
            t_disk, r_disk = timed(lambda: run(disk, path, memory, fakes), args.rounds, clear)
            t_store, r_store = timed(lambda: run(store, path, memory, fakes), args.rounds, clear)
            t_hit, _ = timed(lambda: run(store, path, memory, fakes), args.rounds)
            bad = lambda r: {f.rva >> 12 for f in r.findings  # noqa: E731
                             if f.verdict == Verdict.UNEXPLAINED}
            stored = {rva >> 12 for rva in db.pages_of(db.versions(path.name)[0])}
            hooked = {h >> 12 for h in hooks}
            # the store holds code pages only: a hook in read-only data is the file's to find
            assert hooked & stored <= bad(r_store) and hooked <= bad(r_disk)
            m = r_store.modules[0]
            rows.append((f"{len(memory) / (1 << 20):.1f} MB", m.pages_total, t_disk * 1e3,
                         t_store * 1e3, t_hit * 1e3, t_store / t_disk))
    print(f"{'module':>8} {'stored pages':>12} {'disk cold':>10} {'store cold':>11} "
          f"{'store hit':>10} {'store/disk':>10}")
    for size, pages, d, s, h, ratio in rows:
        print(f"{size:>8} {pages:>12} {d:>8.1f}ms {s:>9.1f}ms {h:>8.1f}ms {ratio:>9.2f}x")
    print(f"(median of {args.rounds}; load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
