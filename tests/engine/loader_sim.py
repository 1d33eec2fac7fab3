"""An independent loader simulation for tests: LIEF lays the file out, relocations are applied
with struct one entry at a time, imports are bound into fake DLL mappings, CFG pointers aimed
into a fake ntdll, the cookie randomised, function overrides retargeted.

Nothing here imports hpforensics.reference: it is the second opinion the engine is checked
against.
"""
from __future__ import annotations

import random
import struct
from pathlib import Path

import lief

from hpforensics.space import BytesAddressSpace, MappedImage

FAKE_SIZE = 0x20000
FAKE_AREA = 0x7FFA_0000_0000
FAKE_AREA_32 = 0x7000_0000


def _u(img: bytearray, at: int, n: int) -> int:
    return int.from_bytes(img[at : at + n], "little")


def _p(img: bytearray, at: int, n: int, v: int) -> None:
    img[at : at + n] = (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


TAILS = ("zero", "file")  # what lies past VirtualSize in a section's last page
FALIGN = "falign"  # the file's bytes up to VirtualSize rounded to FileAlignment, zeros after


def simulate(path: Path, base: int, seed: int = 1, tails: str = "zero",
             ) -> tuple[bytes, list[tuple[MappedImage, bytes]], dict]:
    """(memory image of `path` loaded at `base`, fake DLL regions, facts for planting).

    `tails`: "zero" zero-fills each section past VirtualSize, "file" maps the file's raw data
    there up to the end of the section's last page, "falign" only up to VirtualSize rounded to
    FileAlignment (sources disagree on which Windows does)."""
    assert tails in (*TAILS, FALIGN)
    rng = random.Random(seed)
    b = lief.PE.parse(str(path))
    raw = path.read_bytes()
    oh = b.optional_header
    is64 = b.header.machine != lief.PE.Header.MACHINE_TYPES.I386
    ps = 8 if is64 else 4
    img = bytearray(oh.sizeof_image)
    img[: oh.sizeof_headers] = raw[: oh.sizeof_headers]
    page = 0x1000
    padded = []
    for s in b.sections:
        c = bytes(s.content)  # LIEF gives VirtualSize bytes
        img[s.virtual_address : s.virtual_address + len(c)] = c
        if tails in ("file", FALIGN) and s.sizeof_raw_data > s.virtual_size:
            step = oh.file_alignment if tails == FALIGN else page
            last = min(s.sizeof_raw_data, -(-s.virtual_size // step) * step,
                       -(-s.virtual_size // page) * page)
            pad = raw[s.pointerto_raw_data + s.virtual_size : s.pointerto_raw_data + last]
            end = s.virtual_address + s.virtual_size
            img[end : end + len(pad)] = pad
            if any(pad):
                padded.append(s.virtual_address + s.virtual_size)
    delta = base - oh.imagebase
    # The memory manager records the load address in the mapped header's ImageBase.
    opt = b.dos_header.addressof_new_exeheader + 24
    _p(img, opt + (24 if is64 else 28), ps, base)
    for r in b.relocations:
        for e in r.entries:
            at = r.virtual_address + e.position
            name = str(e.type).split(".")[-1]
            if name == "DIR64":
                _p(img, at, 8, _u(img, at, 8) + delta)
            elif name == "HIGHLOW":
                _p(img, at, 4, _u(img, at, 4) + delta)
    fakes: list[tuple[MappedImage, bytes]] = []
    dll_base: dict[str, int] = {}
    area = FAKE_AREA if is64 else FAKE_AREA_32
    for i, imp in enumerate(b.imports):
        dll = imp.name.lower()
        if dll not in dll_base:
            dll_base[dll] = area + len(dll_base) * FAKE_SIZE
            fakes.append((MappedImage(dll_base[dll], FAKE_SIZE,
                                      f"C:\\Windows\\System32\\{dll}", dll), bytes(FAKE_SIZE)))
        for j, e in enumerate(imp.entries):
            _p(img, e.iat_address, ps, dll_base[dll] + 0x1000 + 16 * j)
    ntdll = area + 0x100 * FAKE_SIZE
    fakes.append((MappedImage(ntdll, FAKE_SIZE, "C:\\Windows\\System32\\ntdll.dll", "ntdll.dll"),
                  bytes(FAKE_SIZE)))
    facts: dict = {"iat": [], "cfg": [], "text": None, "padded_tails": padded}
    for imp in b.imports:
        facts["iat"] += [e.iat_address for e in imp.entries]
    if b.has_configuration:
        lc = b.load_configuration
        for va in (lc.guard_cf_check_function_pointer, lc.guard_cf_dispatch_function_pointer,
                   lc.guard_xfg_check_function_pointer, lc.guard_xfg_dispatch_function_pointer,
                   lc.guard_xfg_table_dispatch_function_pointer):
            if va:
                _p(img, va - oh.imagebase, ps, ntdll + 0x3000 + rng.randrange(0, 0x100) * 16)
                facts["cfg"].append(va - oh.imagebase)
        if lc.security_cookie:
            _p(img, lc.security_cookie - oh.imagebase, ps, rng.getrandbits(48))
        for d in lc.dynamic_relocations:
            fx = d.fixups
            for info in getattr(fx, "func_overriding_info", []):
                target = info.functions_rva[-1] if len(info.functions_rva) else info.original_rva
                for r in info.relocations:
                    for e in r.entries:
                        if e.position == 0 and str(e.type).endswith("ABS"):
                            continue
                        site = r.virtual_address + e.position
                        _p(img, site, 4, target - (site + 4))
    text = next(s for s in b.sections if s.characteristics & 0x20000000)
    facts["text"] = (text.virtual_address, text.virtual_size)
    ro = [(s.virtual_address, s.virtual_address + s.virtual_size) for s in b.sections
          if not s.characteristics & 0x80000000]
    facts["relocs"] = [r.virtual_address + e.position for r in b.relocations for e in r.entries
                       if str(e.type).endswith("DIR64")
                       and any(a <= r.virtual_address + e.position < z for a, z in ro)]
    facts["sections"] = {s.name: (s.virtual_address, s.virtual_size, s.characteristics)
                         for s in b.sections}
    # Function starts from .pdata (x64: RUNTIME_FUNCTION, 12 bytes), read off the header
    # directly rather than through anything the engine uses.
    facts["functions"] = []
    if is64:
        exc_rva, exc_size = struct.unpack_from("<II", img, opt + 112 + 3 * 8)
        facts["functions"] = sorted(struct.unpack_from("<I", img, exc_rva + 12 * i)[0]
                                    for i in range(exc_size // 12))
    return bytes(img), fakes, facts


def space_for(path: Path, base: int, img: bytes, fakes, **kw) -> BytesAddressSpace:
    me = MappedImage(base, len(img), str(path), path.name.lower())
    return BytesAddressSpace([(me, img), *fakes], source=f"file:{path}", **kw)
