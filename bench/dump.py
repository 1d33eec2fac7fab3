"""windows.hotpatch.Regions against Volatility's own windows.malfind and windows.dlllist, same run.

Input: the bundled sample image (samples/win11-24h2-hotpatch.raw: 11 address spaces, 49
modules, 18 of them with an on-disk reference in samples/pe). Each plugin runs the way `vol`
runs it, through the library: a fresh context, automagic (DTB, kernel, symbols), then the
plugin's TreeGrid fully populated. Rounds alternate plugins so caches and the OS page cache
favour none. Regions verifies every page of every referenced image (and decodes every
hotpatch chain); malfind only looks at private executable VADs; dlllist only walks loader
lists. Also reports the pages each one inspected.

    .venv/bin/python bench/dump.py [--rounds N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMAGE = REPO / "samples" / "win11-24h2-hotpatch.raw"
SYMBOLS = REPO / "samples" / "symbols"


def build_scaled(copies: int) -> tuple[Path, Path]:
    """The scenario planted `copies` times into a 64 MiB image in a cache dir (deterministic)."""
    import subprocess

    out = Path(tempfile.gettempdir()) / f"hpf-bench-dump-x{copies}"
    image, symbols = out / "image.raw", out / "symbols"
    if not image.exists():
        out.mkdir(exist_ok=True)
        subprocess.run([sys.executable, str(REPO / "samples" / "build_memimage.py"), "-o",
                        str(image), "--symbols", str(symbols), "--plan", str(out / "plan.json"),
                        "--copies", str(copies), "--size-mib", "64"], check=True,
                       capture_output=True)
    return image, symbols


def run_plugin(name: str, extra: dict) -> tuple[float, float, int]:
    """Seconds for automagic + run + populate, seconds for run + populate alone, and rows."""
    from volatility3 import framework
    from volatility3.framework import automagic, contexts, plugins

    from hpforensics.memimage.session import _prepare_framework

    _prepare_framework([SYMBOLS])
    t0 = time.perf_counter()
    ctx = contexts.Context()
    ctx.config["automagic.LayerStacker.single_location"] = IMAGE.resolve().as_uri()
    plugin_cls = dict(framework.list_plugins())[name]
    for key, value in extra.items():
        ctx.config[f"plugins.{plugin_cls.__name__}.{key}"] = value
    chosen = automagic.choose_automagic(automagic.available(ctx), plugin_cls)
    plugin = plugins.construct_plugin(ctx, chosen, plugin_cls, "plugins", None, None)
    t1 = time.perf_counter()
    rows = 0

    def count(node, acc):
        nonlocal rows
        rows += 1
        return acc

    plugin.run().populate(count, None)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, rows


def run_cli(args: list[str]) -> float:
    """Wall seconds of one `vol` command line, as a user runs it (imports included)."""
    import subprocess

    vol = Path(sys.executable).with_name("vol")
    cache = Path(tempfile.gettempdir()) / "hpf-bench-dump-vol-cache"  # private: see session.py
    cache.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run([str(vol), "-q", "--offline", "--cache-path", str(cache), "-r", "none",
                    "-f", str(IMAGE), "-s", str(SYMBOLS), *args],
                   check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cli-rounds", type=int, default=3, help="`vol` command-line runs (0: skip)")
    ap.add_argument("--copies", type=int, default=1,
                    help="plant every sample process N times (a bigger image, built in a temp dir)")
    args = ap.parse_args()
    global IMAGE, SYMBOLS
    if args.copies > 1:
        IMAGE, SYMBOLS = build_scaled(args.copies)
    if not IMAGE.exists():
        os.system(f"{sys.executable} {REPO / 'samples' / 'build_memimage.py'}")
    contenders = [
        ("windows.hotpatch.Regions", {"reference": [str(REPO / "samples" / "pe")]}),
        ("windows.malware.malfind.Malfind", {}),
        ("windows.dlllist.DllList", {}),
    ]
    times: dict[str, list[float]] = {n: [] for n, _ in contenders}
    runs: dict[str, list[float]] = {n: [] for n, _ in contenders}
    rows: dict[str, int] = {}
    for n, extra in contenders:  # warm-up: imports, symbol cache, page cache
        run_plugin(n, extra)
    for _ in range(args.rounds):
        for n, extra in contenders:
            t, run, r = run_plugin(n, extra)
            times[n].append(t)
            runs[n].append(run)
            rows[n] = r
    med = {n: statistics.median(v) for n, v in times.items()}
    rmed = {n: statistics.median(v) for n, v in runs.items()}
    mal, dll = "windows.malware.malfind.Malfind", "windows.dlllist.DllList"
    print(f"image: {IMAGE.name} (x{args.copies}), rounds: {args.rounds}, medians; 'total' includes automagic "
          "(DTB, kernel, symbols), 'plugin' is run + populate only")
    print(f"{'plugin':32} {'total s':>8} {'vs malfind':>10} {'vs dlllist':>10} "
          f"{'plugin s':>9} {'vs malfind':>10} {'vs dlllist':>10} {'rows':>5}")
    for n, _ in contenders:
        print(f"{n:32} {med[n]:8.3f} {med[n] / med[mal]:9.2f}x {med[n] / med[dll]:9.2f}x "
              f"{rmed[n]:9.3f} {rmed[n] / rmed[mal]:9.2f}x {rmed[n] / rmed[dll]:9.2f}x "
              f"{rows[n]:5d}")
    if args.cli_rounds:
        lines = {
            "vol windows.hotpatch.Regions": ["-p", str(REPO / "plugins"), "windows.hotpatch.Regions",
                                             "--reference", str(REPO / "samples" / "pe")],
            "vol windows.malware.malfind": ["windows.malware.malfind"],
            "vol windows.dlllist": ["windows.dlllist"],
        }
        wall: dict[str, list[float]] = {n: [] for n in lines}
        for _ in range(args.cli_rounds):
            for n, argv in lines.items():
                wall[n].append(run_cli(argv))
        w = {n: statistics.median(v) for n, v in wall.items()}
        print(f"\n{'command line (wall, median of ' + str(args.cli_rounds) + ')':44} {'s':>6} "
              f"{'vs malfind':>10} {'vs dlllist':>10}")
        for n in lines:
            print(f"{n:44} {w[n]:6.2f} {w[n] / w['vol windows.malware.malfind']:9.2f}x "
                  f"{w[n] / w['vol windows.dlllist']:9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
