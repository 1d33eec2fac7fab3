#!/usr/bin/env python3
"""Build samples/win11-24h2-hotpatch.raw, its ISF symbol table and samples/memimage-plan.json.

Deterministic (fixed GUID, times, layout; no randomness) and quick (about a second). Run:
    python samples/build_memimage.py [-o IMAGE] [--symbols DIR] [--plan FILE]
The image is a raw physical memory file that Volatility 3 recognises with no config file:
    vol -f samples/win11-24h2-hotpatch.raw -s samples/symbols windows.pslist
"""
from __future__ import annotations

import argparse
import json
import lzma
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from memimage import isf  # noqa: E402
from memimage.scenario import build_scenario  # noqa: E402

IMAGE = HERE / "win11-24h2-hotpatch.raw"
SYMBOLS = HERE / "symbols"
PLAN = HERE / "memimage-plan.json"


def write_symbols(symbols_dir: Path, guid: str, age: int, table: dict) -> Path:
    """ISF as Volatility looks it up: windows/<pdb name>/<GUID>-<age>.json.xz."""
    out = symbols_dir / "windows" / "ntkrnlmp.pdb" / f"{guid}-{age}.json.xz"
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(table, indent=1, sort_keys=True).encode()
    # preset fixed and no timestamps in the xz container: identical bytes on every run
    out.write_bytes(lzma.compress(raw, preset=6))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=IMAGE)
    ap.add_argument("--symbols", type=Path, default=SYMBOLS)
    ap.add_argument("--plan", type=Path, default=PLAN)
    ap.add_argument("--copies", type=int, default=1,
                    help="plant every scenario process this many times (bigger image for bench)")
    ap.add_argument("--size-mib", type=int, default=16, help="physical memory size")
    ap.add_argument("--modules", type=int, default=0,
                    help="load this many System32 DLLs (of a library of 100) into every process")
    ap.add_argument("--fill", action="store_true",
                    help="fill physical memory: committed heaps in every process, then free "
                         "frames with content (an image at real size; content is streamed)")
    ap.add_argument("--pe-dir", type=Path, default=HERE / "pe",
                    help="the project's sample PE files (hpbase.dll, patch images, hpkern.sys)")
    args = ap.parse_args(argv)

    builder, plan = build_scenario(args.pe_dir, args.copies, args.size_mib << 20, args.modules,
                                   args.fill)
    symbols = builder.finalize()
    if args.fill:  # frames no process maps: old data on the free and standby lists
        builder.mem.alloc_generated((builder.mem.size - builder.mem.used) // 0x1000, "heap")
    guid = builder.guid.hex.upper()
    table = isf.build_isf(guid, builder.age, symbols, builder.build)
    isf_path = write_symbols(args.symbols, guid, builder.age, table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    builder.mem.save(args.output)
    plan["image"] = {
        "file": args.output.name,
        "size": builder.mem.size,
        "frames_used": builder.mem.used // 0x1000,
        "kernel_dtb": builder.kernel.dtb,
        "symbols": str(isf_path.relative_to(args.symbols)),
        "pdb": {"name": "ntkrnlmp.pdb", "guid": guid, "age": builder.age},
    }
    if args.modules or args.fill:  # the bench reads the machine's size from here
        plan["image"]["processes"] = len(builder.processes)
        plan["image"]["modules"] = sum(len(p.modules) for p in builder.processes)
    args.plan.write_text(json.dumps(plan, indent=2, sort_keys=False) + "\n")
    print(f"wrote {args.output} ({builder.mem.size >> 20} MiB), {isf_path}, {args.plan}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
