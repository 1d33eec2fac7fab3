"""PE metadata parse time: hpforensics PEImage vs pefile (full parse) vs LIEF, same files, same run.

    .venv/bin/python bench/pe_parse.py
"""
from __future__ import annotations

import glob
import os
import statistics
import time
from pathlib import Path

import lief
import pefile

from hpforensics.pe import PEImage

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HPF_SHARED_DATA", ROOT.parent / "shared" / "data"))


def timed(fn, path, rounds=5) -> float:
    best = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn(path)
        best.append(time.perf_counter() - t)
    return statistics.median(best) * 1000


def main() -> None:
    files = (sorted(glob.glob(str(SHARED / "pe" / "*.dll")))
             + sorted(glob.glob(str(ROOT / "samples" / "pe" / "*.dll"))))
    lief.logging.disable()
    print(f"{'file':24} {'size':>8} {'PEImage ms':>11} {'pefile ms':>10} {'LIEF ms':>8} "
          f"{'ours/pefile':>11}")
    for f in files:
        ours = timed(PEImage.from_file, f)
        pf = timed(lambda p: pefile.PE(p), f)
        lf = timed(lambda p: lief.parse(p), f)
        print(f"{Path(f).name:24} {os.path.getsize(f):>8} {ours:>11.1f} {pf:>10.1f} {lf:>8.1f} "
              f"{ours / pf:>11.2f}")


if __name__ == "__main__":
    main()
