#!/usr/bin/env python3
"""Build the PE samples and the memory images of them, deterministically.

    python samples/build_pe.py [OUTDIR]      (default: samples/pe)

Writes hpbase.dll (hotpatch-capable base), hpbase_hp1.dll / hpbase_hp2.dll (patch images,
sequence 1 and 2), forged_hp.dll (IMAGE_HOT_PATCH_BASE names no real base), hpkern.sys +
hpkern_hp1.sys (native subsystem), then mem/*.bin — modules laid out as loaded, relocated,
bound, with patches applied the way the Windows hotpatch engine applies them (see
docs/hotpatch-format.md) and with attacker changes — and plan.json, which lists for every
scenario its regions and every planted change with the verdict hpforensics must give.
"""
from __future__ import annotations

import hashlib
import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import pefile  # noqa: E402
from pe_samples import Built, PatchSpec, build_base, build_patch  # noqa: E402

from hpforensics.pe.structures import (  # noqa: E402
    CHUNK_EXTENT_X64,
    HPAT_SLOT_DISTANCE,
    HPAT_STUB_X64,
    ChunkType,
    hpat_entry_offset,
)

TS_BASE, TS_HP1, TS_HP2, TS_FORGED = 0x66F1A000, 0x6752B000, 0x6779C000, 0x67800000
TS_KBASE, TS_KHP1 = 0x66F1A100, 0x6752B100
NEW_COOKIE = 0x00002C4F1A3B5D7E  # what "the loader" writes over the default cookie
HPAT_SIZE = 0x2000  # one stub page + one pointer page: 512 entries

USER = {
    "hpbase.dll": 0x7FFB12340000, "hpbase_hp1.dll": 0x7FFB12400000,
    "hpbase_hp2.dll": 0x7FFB12480000, "forged_hp.dll": 0x7FFB12500000,
    "shellcode": 0x7FFB12600000,
}
KERNEL = {"hpkern.sys": 0xFFFFF80612340000, "hpkern_hp1.sys": 0xFFFFF80612400000}
IMPORT_TARGETS = {
    "kernel32.dll": {"base": 0x7FFB2A3B0000, "size": 0xC2000,
                     "exports": {"GetTickCount": 0x7FFB2A3C1F30, "Sleep": 0x7FFB2A3C4A10}},
    "ntdll.dll": {"base": 0x7FFB2C4F0000, "size": 0x1F8000,
                  "exports": {"LdrpValidateUserCallTarget": 0x7FFB2C5A1230,
                              "LdrpDispatchUserCallTarget": 0x7FFB2C5A1300}},
    "ntoskrnl.exe": {"base": 0xFFFFF80610000000, "size": 0x1046000,
                     "exports": {"KeQueryTimeIncrement": 0xFFFFF806102A0C40,
                                 "ExFreePool": 0xFFFFF806104B1010,
                                 "guard_check_icall": 0xFFFFF80610420AD0,
                                 "guard_dispatch_icall": 0xFFFFF80610420B40}},
}


def hx(n: int) -> str:
    return f"{n:#x}"


@dataclass
class Change:
    module: str
    address: int
    size: int
    verdict: str
    kind: str
    reason: str
    module_base: int
    patch_image: str = ""
    sequence: int | None = None
    function_rva: int | None = None
    branch_target: int | None = None

    def row(self) -> dict:
        d = {"module": self.module, "address": hx(self.address),
             "rva": hx(self.address - self.module_base),
             "size": self.size, "verdict": self.verdict, "kind": self.kind, "reason": self.reason}
        if self.patch_image:
            d["patch_image"] = self.patch_image
        if self.sequence is not None:
            d["sequence"] = self.sequence
        if self.function_rva is not None:
            d["function_rva"] = hx(self.function_rva)
        if self.branch_target is not None:
            d["branch_target"] = hx(self.branch_target)
        return d


@dataclass
class Loaded:
    """One module in one scenario's memory, with every write recorded."""

    built: Built
    base: int
    mem: bytearray
    changes: list[Change] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.built.name

    def write(self, rva: int, data: bytes, verdict: str, kind: str, reason: str, **kw) -> None:
        self.mem[rva:rva + len(data)] = data
        addr = self.base + rva
        # a later write to the same bytes (CFG over reloc, sequence 2 over 1) replaces the record
        self.changes = [c for c in self.changes if not (c.address == addr and c.size == len(data))]
        self.changes.append(Change(self.name, addr, len(data), verdict, kind, reason, self.base,
                                   **kw))

    def u64(self, rva: int) -> int:
        return struct.unpack_from("<Q", self.mem, rva)[0]


def load(built: Built, base: int, cfg: tuple[int, int]) -> Loaded:
    """Map, relocate, bind the IAT, write CFG pointers and the cookie: the loader's writes."""
    pe = pefile.PE(data=built.data)
    mem = bytearray(pe.get_memory_mapped_image())
    mem += bytes(pe.OPTIONAL_HEADER.SizeOfImage - len(mem))
    ld = Loaded(built, base, mem)
    delta = base - pe.OPTIONAL_HEADER.ImageBase
    for block in getattr(pe, "DIRECTORY_ENTRY_BASERELOC", []):
        for e in block.entries:
            if e.type == 10:
                v = (ld.u64(e.rva) + delta) & 0xFFFFFFFFFFFFFFFF
                ld.write(e.rva, struct.pack("<Q", v), "loader", "reloc", "base relocation (DIR64)")
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        target = IMPORT_TARGETS[entry.dll.decode().lower()]["exports"]
        for imp in entry.imports:
            ld.write(imp.address - pe.OPTIONAL_HEADER.ImageBase,
                     struct.pack("<Q", target[imp.name.decode()]),
                     "loader", "iat", f"import {entry.dll.decode()}!{imp.name.decode()} bound")
    lc = pe.DIRECTORY_ENTRY_LOAD_CONFIG.struct
    ib = pe.OPTIONAL_HEADER.ImageBase
    ld.write(lc.GuardCFCheckFunctionPointer - ib, struct.pack("<Q", cfg[0]), "loader",
             "cfg_pointer",
             "CFG check function pointer set by the loader")
    ld.write(lc.GuardCFDispatchFunctionPointer - ib, struct.pack("<Q", cfg[1]), "loader",
             "cfg_pointer",
             "CFG dispatch function pointer set by the loader")
    ld.write(pe.OPTIONAL_HEADER.get_file_offset() + 24, struct.pack("<Q", base), "loader",
             "header_image_base",
             "memory manager wrote the load address into OptionalHeader.ImageBase")
    ld.write(lc.SecurityCookie - ib, struct.pack("<Q", NEW_COOKIE), "loader", "security_cookie",
             "default /GS cookie replaced by the loader")
    return ld


@dataclass
class Hpat:
    owner: Loaded
    address: int
    mem: bytearray = field(default_factory=lambda: bytearray(HPAT_SIZE))
    entries: list[dict] = field(default_factory=list)

    def populate(self, index: int, target: int, patch: str, function_rva: int,
                 sequence: int) -> int:
        off = hpat_entry_offset(index)
        self.mem[off:off + 8] = HPAT_STUB_X64
        struct.pack_into("<Q", self.mem, off + HPAT_SLOT_DISTANCE, target)
        row = {"index": index, "stub": hx(self.address + off),
               "slot": hx(self.address + off + HPAT_SLOT_DISTANCE),
               "target": hx(target), "patch_image": patch, "function_rva": hx(function_rva),
               "sequence": sequence}
        self.entries = [e for e in self.entries if e["index"] != index] + [row]
        return self.address + off

    def index_of(self, function_rva: int) -> int | None:
        return next((e["index"] for e in self.entries if e["function_rva"] == hx(function_rva)),
                    None)


def apply_patch(base: Loaded, patch: Loaded, hpat: Hpat, spec: PatchSpec, *,
                verdict: str = "hotpatch",
                reason: str = "") -> None:
    """What RtlApplyHotPatch does for one patch image (x64, newer E9/EB F9 form)."""
    from hpforensics.pe import PEImage

    info = PEImage.from_bytes(patch.built.data, patch.name).hotpatch
    assert info is not None
    hp_base = info.bases[0]
    kw = {"patch_image": patch.name, "sequence": spec.sequence}
    for e in hp_base.patch_table:
        if e.chunk_type == ChunkType.FUNCTION:
            f = e.base_rva
            index = hpat.index_of(f)
            fresh = index is None
            if fresh:
                index = len(hpat.entries)
            stub = hpat.populate(index, patch.base + e.patch_rva, patch.name, f, spec.sequence)
            why = reason or (f"hotpatch redirect to {patch.name} (sequence {spec.sequence}) "
                             f"through HPAT entry {index}")
            # already redirected: the kernel only rewrites the pointer slot; the base bytes stay
            base.changes = [c for c in base.changes if c.address != base.base + f - 5]
            rel = stub - (base.base + f)
            if fresh:
                base.mem[f - 5:f + 2] = b"\xE9" + struct.pack("<i", rel) + b"\xEB\xF9"
            base.changes.append(Change(base.name, base.base + f - 5, 7, verdict,
                                       "hotpatch_redirect", why,
                                       base.base, function_rva=f, branch_target=stub, **kw))
        elif e.chunk_type == ChunkType.ABSOLUTE:
            patch.write(e.patch_rva, struct.pack("<Q", base.base + e.base_rva), verdict,
                        "hotpatch_absolute",
                        f"__ref_ pointer to {base.name}+{e.base_rva:#x} (ABSOLUTE entry)", **kw)
        elif e.chunk_type == ChunkType.INDIRECT:
            patch.write(e.patch_rva, struct.pack("<Q", base.u64(e.base_rva)), verdict,
                        "hotpatch_indirect",
                        f"copy of {base.name}+{e.base_rva:#x} (INDIRECT entry)", **kw)
        elif e.chunk_type == ChunkType.REL32:
            field_va = patch.base + e.patch_rva
            rel = base.base + e.base_rva - (field_va + 4)
            patch.write(e.patch_rva, struct.pack("<i", rel), verdict, "hotpatch_rel32",
                        f"rel32 to {base.name}+{e.base_rva:#x} (REL32 entry)", **kw)
    assert CHUNK_EXTENT_X64[ChunkType.FUNCTION] == (-6, 8)  # the window the redirect lives in


class Scenario:
    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description
        self.modules: list[Loaded] = []
        self.hpats: list[Hpat] = []
        self.private: list[tuple[int, bytes, str]] = []
        self.extra_changes: list[Change] = []


def user_base(files: dict[str, Built]) -> Loaded:
    t = IMPORT_TARGETS["ntdll.dll"]["exports"]
    return load(files["hpbase.dll"], USER["hpbase.dll"],
                (t["LdrpValidateUserCallTarget"], t["LdrpDispatchUserCallTarget"]))


def user_module(files, name) -> Loaded:
    t = IMPORT_TARGETS["ntdll.dll"]["exports"]
    return load(files[name], USER[name],
                (t["LdrpValidateUserCallTarget"], t["LdrpDispatchUserCallTarget"]))


def scenarios(files: dict[str, Built], specs: dict[str, PatchSpec]) -> list[Scenario]:
    out = []
    s = Scenario("clean", "hpbase.dll loaded at a new base, relocated and bound; no patch")
    s.modules = [user_base(files)]
    out.append(s)

    for name, seqs in (("hp1", ["hpbase_hp1.dll"]), ("hp2", ["hpbase_hp1.dll", "hpbase_hp2.dll"])):
        s = Scenario(name, "hpbase.dll with " + " then ".join(seqs)
                     + " applied by the hotpatch engine")
        base = user_base(files)
        hpat = user_hpat(base)
        s.modules, s.hpats = [base], [hpat]
        for p in seqs:
            m = user_module(files, p)
            apply_patch(base, m, hpat, specs[p])
            s.modules.append(m)
        out.append(s)

    s = Scenario("attacked", "hp1 state plus an inline hook, a fake EB F9 redirect, a redirect "
                             "into a forged patch image and an IAT hook")
    base = user_base(files)
    hpat = user_hpat(base)
    hp1 = user_module(files, "hpbase_hp1.dll")
    apply_patch(base, hp1, hpat, specs["hpbase_hp1.dll"])
    forged = user_module(files, "forged_hp.dll")
    apply_patch(base, forged, hpat, specs["forged_hp.dll"], verdict="unexplained",
                reason="HPAT slot points into forged_hp.dll, whose IMAGE_HOT_PATCH_BASE does not "
                       "match hpbase.dll")
    sc = USER["shellcode"]
    s.private = [(sc, bytes.fromhex("4831C0C3") + bytes(0xFC) + bytes.fromhex("CCCCC3")
                  + bytes(0xFD) + bytes.fromhex("FF2500000000")
                  + struct.pack("<Q", IMPORT_TARGETS["kernel32.dll"]["exports"]["Sleep"])
                  + bytes(0x1000 - 0x20E), "private RWX region (attacker shellcode)")]
    f = files["hpbase.dll"].functions["HpGetCount"]
    rel = sc - (base.base + f + 5)
    base.write(f, b"\xE9" + struct.pack("<i", rel), "unexplained", "inline_hook",
               "jmp at function entry to a private region (inline hook)", function_rva=f,
               branch_target=sc)
    f = files["hpbase.dll"].functions["HpCallImport"]
    rel = (sc + 0x100) - (base.base + f)
    base.mem[f - 5:f + 2] = b"\xE9" + struct.pack("<i", rel) + b"\xEB\xF9"
    base.changes.append(Change(base.name, base.base + f - 5, 7, "unexplained",
                               "fake_hotpatch_redirect", "EB F9 + E9 in the padding like a "
                               "hotpatch, but the target is not an HPAT stub",
                               base.base, function_rva=f, branch_target=sc + 0x100))
    iat1 = files["hpbase.dll"].rva("iat1")
    base.write(iat1, struct.pack("<Q", sc + 0x200), "unexplained", "iat_hook",
               "IAT slot for kernel32.dll!Sleep points to a private region, not kernel32.dll",
               branch_target=sc + 0x200)
    s.modules, s.hpats = [base, hp1, forged], [hpat]
    out.append(s)

    s = Scenario("kernel_hp1", "hpkern.sys (driver) with hpkern_hp1.sys applied")
    t = IMPORT_TARGETS["ntoskrnl.exe"]["exports"]
    kb = load(files["hpkern.sys"], KERNEL["hpkern.sys"],
              (t["guard_check_icall"], t["guard_dispatch_icall"]))
    kp = load(files["hpkern_hp1.sys"], KERNEL["hpkern_hp1.sys"],
              (t["guard_check_icall"], t["guard_dispatch_icall"]))
    hpat = Hpat(kb, kb.base + base_size(kb))
    apply_patch(kb, kp, hpat, specs["hpkern_hp1.sys"])
    s.modules, s.hpats = [kb, kp], [hpat]
    out.append(s)
    return out


def base_size(ld: Loaded) -> int:
    """End of the image proper, page aligned: the extension pages start here."""
    return (len(ld.mem) + 0xFFF) & ~0xFFF


# On 24H2 the first extension page of a user-mode image is the SCP CFG page (ynwarcs, "CFG in
# Windows 11 24H2": MiGetImageExtensionBaseAddress = base + image size); the HPAT follows it
# (inference from MiInitializeImageHotPatchContext: image size + a system-wide value). Kernel
# images get no SCP page: their HPAT starts at the image end. See docs/hotpatch-format.md.
SCP_PAGE = 0x1000


def user_hpat(ld: Loaded) -> "Hpat":
    return Hpat(ld, ld.base + base_size(ld) + SCP_PAGE)


def build_files() -> tuple[dict[str, Built], dict[str, PatchSpec]]:
    files: dict[str, Built] = {}
    base = build_base("hpbase.dll", kernel=False, timestamp=TS_BASE)
    files[base.name] = base
    kbase = build_base("hpkern.sys", kernel=True, timestamp=TS_KBASE)
    files[kbase.name] = kbase
    specs = {
        "hpbase_hp1.dll": PatchSpec("hpbase_hp1.dll", 1, base, ["HpCheckToken", "HpAdd"],
                                    "Dispatch", TS_HP1),
        "hpbase_hp2.dll": PatchSpec("hpbase_hp2.dll", 2, base,
                                    ["HpCheckToken", "HpAdd", "HpGetCount"],
                                    "Dispatch", TS_HP2),
        "forged_hp.dll": PatchSpec("forged_hp.dll", 1, base, ["HpDispatch"], "Dispatch", TS_FORGED,
                                   forge=True),
        "hpkern_hp1.sys": PatchSpec("hpkern_hp1.sys", 1, kbase, ["KpCheckToken", "KpAdd"],
                                    "Dispatch", TS_KHP1),
    }
    for name, spec in specs.items():
        files[name] = build_patch(spec, kernel=name.endswith(".sys"))
    return files, specs


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "mem").mkdir(exist_ok=True)
    files, specs = build_files()
    plan: dict = {"generator": "samples/build_pe.py", "hpat_size": hx(HPAT_SIZE), "files": {},
                  "import_targets": {k: {"base": hx(v["base"]), "size": hx(v["size"]),
                                         "exports": {n: hx(a) for n, a in v["exports"].items()}}
                                     for k, v in IMPORT_TARGETS.items()},
                  "scenarios": []}
    for name, b in files.items():
        (outdir / name).write_bytes(b.data)
        plan["files"][name] = {"sha256": hashlib.sha256(b.data).hexdigest(),
                               "timestamp": hx(b.timestamp),
                               "checksum": hx(b.checksum), "image_base": hx(b.image.image_base),
                               "functions": {n: hx(r) for n, r in b.functions.items()}}
    written: set[str] = set()
    for sc in scenarios(files, specs):
        regions, changes = [], []
        for m in sc.modules:
            blob = bytes(m.mem)
            fname = _write_once(outdir / f"mem/{sc.name}.{m.name}@{m.base:x}.bin", blob, written)
            regions.append({"file": fname, "kind": "image", "module": m.name, "path": m.name,
                            "base": hx(m.base), "size": hx(len(blob)),
                            "timestamp": hx(m.built.timestamp),
                            "checksum": hx(m.built.checksum), "is_patch_image": m.name in specs})
            changes += [c.row() for c in sorted(m.changes, key=lambda c: c.address)]
        hpats = []
        for h in sc.hpats:
            fname = _write_once(outdir / f"mem/{sc.name}.hpat@{h.address:x}.bin", bytes(h.mem),
                                written)
            regions.append({"file": fname, "kind": "hpat", "module": h.owner.name,
                            "base": hx(h.address),
                            "size": hx(HPAT_SIZE)})
            hpats.append({"module": h.owner.name, "address": hx(h.address), "size": hx(HPAT_SIZE),
                          "entries": sorted(h.entries, key=lambda e: e["index"])})
        for addr, blob, what in sc.private:
            fname = _write_once(outdir / f"mem/{sc.name}.private@{addr:x}.bin", blob, written)
            regions.append({"file": fname, "kind": "private", "module": "", "base": hx(addr),
                            "size": hx(len(blob)), "description": what})
        plan["scenarios"].append({"name": sc.name, "description": sc.description,
                                  "space": "kernel" if sc.name.startswith("kernel") else "user",
                                  "regions": regions, "hpat": hpats, "changes": changes})
    with open(outdir / "plan.json", "w", encoding="utf-8", newline="\n") as fh:
        json.dump(plan, fh, indent=1)
        fh.write("\n")
    for stale in sorted((outdir / "mem").glob("*.bin")):
        if f"mem/{stale.name}" not in written:
            stale.unlink()


_BY_CONTENT: dict[str, str] = {}


def _write_once(path: Path, blob: bytes, written: set[str]) -> str:
    """Write a region file, or reuse an identical one written for an earlier scenario."""
    digest = hashlib.sha256(blob).hexdigest()
    if digest in _BY_CONTENT:
        return _BY_CONTENT[digest]
    path.write_bytes(blob)
    name = f"mem/{path.name}"
    written.add(name)
    _BY_CONTENT[digest] = name
    return name


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "pe")
