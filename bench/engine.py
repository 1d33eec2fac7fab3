"""Verification engine against a straightforward pefile-only implementation, same run.

Input: synthetic 2 MiB and 20 MiB modules made by *scaling a real one*: msvcp140.dll (the
Microsoft-built DLL in ../shared/data/pe) keeps its own sections, imports, load config and
CFG pointers as copy 0, and k-1 further copies of its laid-out image follow as executable
sections, each with the original's base relocations shifted into it (so relocation density,
code and data are real); a new .reloc holds them all. The "memory" image is that module loaded
at another base, IAT bound into fake DLL mappings, CFG pointers aimed at a fake ntdll, and
three planted 5-byte hooks.

Per module both sides do the whole job: lay out, relocate, mask IAT, compare, report changed
ranges. Baseline: pefile full parse + relocate_image + get_memory_mapped_image + a Python
byte-by-byte comparison. hpforensics: `verify_space` (template build, numpy relocation,
masks, C-core comparison, classification) cold (caches cleared), warm (template cached, new
base) and hot (expected image cached).

    .venv/bin/python bench/engine.py [--rounds N] [--sizes 2,20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pefile  # noqa: E402

from hpforensics.engine import verify_space
from hpforensics.sources.files import FilesSpace  # noqa: E402
from hpforensics.model import Verdict  # noqa: E402
from hpforensics.reference import FileReferences  # noqa: E402
from hpforensics.reference.expected import EXPECTED, TEMPLATES, build_expected  # noqa: E402
from hpforensics.space import MappedImage  # noqa: E402

SHARED = Path(os.environ.get("HPF_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
SOURCE = SHARED / "pe" / "msvcp140.dll"
PAGE = 0x1000
NEW_BASE = 0x7FF6_4000_0000
FAKE = 0x7FFA_0000_0000


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)


def scale_pe(src: bytes, copies: int) -> bytes:
    """A valid PE32+ made of `copies` copies of `src` laid out, as described above."""
    pe = pefile.PE(data=src)
    layout = pe.get_memory_mapped_image()
    size = pe.OPTIONAL_HEADER.SizeOfImage
    relocs = [(e.rva, e.type) for b in pe.DIRECTORY_ENTRY_BASERELOC for e in b.entries if e.type]
    lf = pe.DOS_HEADER.e_lfanew
    opt = lf + 24
    table = opt + pe.FILE_HEADER.SizeOfOptionalHeader
    orig = [(s.Name, s.Misc_VirtualSize, s.VirtualAddress, s.SizeOfRawData, s.Characteristics,
             src[s.PointerToRawData : s.PointerToRawData + s.SizeOfRawData]) for s in pe.sections]
    sections = list(orig)
    for j in range(1, copies):
        sections.append((f".t{j:05d}".encode(), size, j * size, size, 0x60000020, layout[:size]))
    # The relocation table: every original entry, shifted into each copy, grouped by page.
    pages: dict[int, list[int]] = {}
    for j in range(copies):
        for rva, typ in relocs:
            r = rva + j * size
            pages.setdefault(r & ~0xFFF, []).append((typ << 12) | (r & 0xFFF))
    blob = bytearray()
    for page in sorted(pages):
        entries = sorted(pages[page])
        if len(entries) % 2:
            entries.append(0)
        blob += (struct.pack("<II", page, 8 + 2 * len(entries))
                 + struct.pack(f"<{len(entries)}H", *entries))
    reloc_va = copies * size
    sections.append((b".reloc2", len(blob), reloc_va, _align(len(blob), 0x200), 0x42000040,
                     bytes(blob)))
    headers = bytearray(src[:PAGE].ljust(PAGE, b"\0"))
    struct.pack_into("<H", headers, lf + 6, len(sections))
    struct.pack_into("<I", headers, opt + 56, _align(reloc_va + len(blob), PAGE))  # SizeOfImage
    struct.pack_into("<I", headers, opt + 60, PAGE)  # SizeOfHeaders
    struct.pack_into("<I", headers, opt + 64, 0)  # CheckSum
    struct.pack_into("<II", headers, opt + 112 + 5 * 8, reloc_va, len(blob))
    body = bytearray()
    raw = PAGE
    for i, (name, vsize, va, rsize, chars, data) in enumerate(sections):
        struct.pack_into("<8sIIIIIIHHI", headers, table + 40 * i, name, vsize, va, rsize, raw,
                         0, 0, 0, 0, chars)
        body += data.ljust(rsize, b"\0")
        raw += rsize
    return bytes(headers) + bytes(body)


def memory_image(path: Path) -> tuple[bytes, list[tuple[MappedImage, bytes]], list[int]]:
    exp = build_expected(path, NEW_BASE)
    mem = bytearray(exp.data)
    iat = exp.template.iat
    fakes = [(MappedImage(FAKE + i * 0x100000, 0x100000, d, d), b"")
             for i, d in enumerate(iat.dlls)]
    for k, (rva, d) in enumerate(zip(iat.rvas.tolist(), iat.dll.tolist())):
        mem[rva : rva + 8] = struct.pack("<Q", FAKE + d * 0x100000 + 0x1000 + 16 * k)
    ntdll = FAKE + 0x400_0000
    fakes.append((MappedImage(ntdll, 0x200000, "ntdll.dll", "ntdll.dll"), b""))
    g = exp.masks.group(exp.masks.groups[0].kind.__class__("cfg-pointer"))
    for rva in (g.starts.tolist() if g is not None else []):
        mem[rva : rva + 8] = struct.pack("<Q", ntdll + 0x1230)
    hooks = [exp.exec_ranges[0][0] + 0x100, exp.size // 2 & ~0xF, exp.size - 3 * PAGE + 0x40]
    for h in hooks:
        mem[h : h + 5] = b"\xe9\x00\x00\x40\x00"
    TEMPLATES.clear()
    EXPECTED.clear()
    return bytes(mem), fakes, hooks


def baseline(path: Path, memory: bytes, base: int) -> list[tuple[int, int]]:
    """pefile only: parse, relocate, lay out, mask IAT slots, compare byte by byte."""
    pe = pefile.PE(str(path))
    old = pe.OPTIONAL_HEADER.ImageBase
    iat = set()
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        for imp in entry.imports:
            iat.update(range(imp.address - old, imp.address - old + 8))
    lc = getattr(pe, "DIRECTORY_ENTRY_LOAD_CONFIG", None)
    if lc is not None:  # CFG pointers and the cookie, as pe-sieve blanks them
        for f in ("GuardCFCheckFunctionPointer", "GuardCFDispatchFunctionPointer",
                  "GuardXFGCheckFunctionPointer", "GuardXFGDispatchFunctionPointer",
                  "GuardXFGTableDispatchFunctionPointer", "GuardMemcpyFunctionPointer",
                  "SecurityCookie"):
            va = getattr(lc.struct, f, 0)
            if va:
                iat.update(range(va - old, va - old + 8))
    iat.update(range(pe.OPTIONAL_HEADER.SizeOfHeaders))  # headers are not compared
    pe.relocate_image(base)
    img = pe.get_memory_mapped_image(ImageBase=base)
    ranges: list[tuple[int, int]] = []
    n = min(len(img), len(memory))
    for i in range(n):
        if img[i] != memory[i] and i not in iat:
            if ranges and ranges[-1][1] >= i - 8:
                ranges[-1] = (ranges[-1][0], i + 1)
            else:
                ranges.append((i, i + 1))
    return ranges


def ours(path: Path, memory: bytes, fakes, base: int):
    me = MappedImage(base, len(memory), str(path), path.name)
    space = FilesSpace([(me, memory), *fakes])
    return verify_space(space, FileReferences({base: str(path)}), images=[me])


def timed(fn, rounds: int, before=None) -> tuple[float, object]:
    """Median wall time of `rounds` calls of fn (with `before()` run untimed ahead of each)."""
    times, out = [], None
    for _ in range(rounds):
        if before:
            before()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="2,20", help="module sizes in MiB")
    args = ap.parse_args()
    src = SOURCE.read_bytes()
    unit = pefile.PE(data=src, fast_load=True).OPTIONAL_HEADER.SizeOfImage
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "hpf-bench-engine"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for mib in (int(x) for x in args.sizes.split(",")):
        copies = max(1, round(mib * (1 << 20) / unit))
        path = work / f"scaled{mib}.dll"
        path.write_bytes(scale_pe(src, copies))
        memory, fakes, hooks = memory_image(path)
        size_mb = len(memory) / 1e6
        t_base, ranges = timed(lambda: baseline(path, memory, NEW_BASE),
                               1 if mib > 5 else args.rounds)
        assert [s for s, _ in ranges] == hooks, ("baseline disagrees", ranges, hooks)

        def cold():
            TEMPLATES.clear()
            EXPECTED.clear()
            return ours(path, memory, fakes, NEW_BASE)

        t_cold, res = timed(cold, args.rounds)
        # a finding's lead starts at the instruction that holds the first changed byte
        bad = [f for f in res.findings if f.verdict == Verdict.UNEXPLAINED]
        assert len(bad) == len(hooks) and all(
            f.rva <= h < f.rva + f.size for f, h in zip(bad, hooks)), (bad, hooks)
        assert res.modules[0].pages_loader > 0
        t_warm, _ = timed(lambda: (EXPECTED.clear(), ours(path, memory, fakes, NEW_BASE)),
                          args.rounds)
        t_hot, _ = timed(lambda: ours(path, memory, fakes, NEW_BASE), args.rounds)
        n_rel = len(build_expected(path, NEW_BASE).template.reloc_rvas)
        rows.append((f"{size_mb:.1f} MB ({copies}x msvcp140, {n_rel} relocs)", t_base, t_cold,
                     t_warm, t_hot, size_mb))
    print(f"{'module':38} {'pefile+py ms':>12} {'ours cold ms':>12} {'warm ms':>8} {'hot ms':>7} "
          f"{'cold MB/s':>9} {'x cold':>7} {'x warm':>7}")
    for name, tb, tc, tw, th, mb in rows:
        print(f"{name:38} {tb * 1e3:12.0f} {tc * 1e3:12.1f} {tw * 1e3:8.1f} {th * 1e3:7.1f} "
              f"{mb / tc:9.0f} {tb / tc:7.0f} {tb / tw:7.0f}")
    print("baseline MB/s: " + ", ".join(f"{mb / tb:.1f}" for _, tb, _, _, _, mb in rows))


if __name__ == "__main__":
    main()
