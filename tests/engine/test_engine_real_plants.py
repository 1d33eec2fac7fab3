"""Changes planted on real Microsoft-built images laid out by the independent loader emulation
(loader_sim), under both section-tail behaviours: every one is `unexplained` (or `unverified`
where nothing lists the other modules), never `loader` or `hotpatch`."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from loader_sim import TAILS, simulate

from hpforensics.engine import verify_space
from hpforensics.sources.files import FilesSpace
from hpforensics.model import Verdict
from hpforensics.reference.provider import FileReferences
from hpforensics.space import MappedImage

BASE = 0x7FF8_1234_0000
BASE32 = 0x1234_0000
STUB_AREA = 0x7FF8_4000_0000  # private memory holding a fake HPAT-like stub
LAUNCHERS = ("t64.exe", "w64.exe", "t32.exe", "w32.exe")


@pytest.fixture(scope="module")
def every_file(real_pe_files) -> list[Path]:
    folder = next(p for p in real_pe_files if p.name == "t64.exe").parent
    return [*(p for p in real_pe_files if p.name not in LAUNCHERS),
            *(folder / n for n in LAUNCHERS)]


def _base(path: Path) -> int:
    return BASE32 if path.name in ("t32.exe", "w32.exe") else BASE


def _verify(path, mem, fakes, base, regions=(), modules=True, **kw):
    me = MappedImage(base, len(mem), str(path), path.name.lower())
    space = FilesSpace([(me, bytes(mem)), *(fakes if modules else [])], list(regions),
                       source=f"file:{path}")
    return verify_space(space, FileReferences({base: str(path)}), images=[me], **kw)


def _covering(findings, rva):
    return [f for f in findings if f.rva <= rva < f.rva + max(f.size, 1)]


def _fn_with_rex(img: bytes, facts: dict, prefix: bytes) -> int:
    """A .pdata function whose first bytes are `prefix` and which has room for a hook."""
    text_rva, text_size = facts["text"]
    return next(f for f in facts["functions"]
                if img[f : f + len(prefix)] == prefix and img[f + 1] != 0xB8
                and text_rva + 16 <= f < text_rva + text_size - 32)


@pytest.mark.parametrize("tails", TAILS)
def test_plants_in_code_data_slots_and_lookalikes(every_file, tails):
    for path in every_file:
        base = _base(path)
        img, fakes, facts = simulate(path, base, tails=tails)
        ps = 4 if base == BASE32 else 8
        mem = bytearray(img)
        plants: dict[str, int] = {}
        # read-only data: a resource byte (no relocations or slots there)
        rsrc_rva, rsrc_size, _ = facts["sections"][".rsrc"]
        at = rsrc_rva + rsrc_size // 2
        mem[at] ^= 0x5A
        plants["rsrc"] = at
        # a CFG pointer aimed at heap memory, and an IAT slot aimed at another heap address
        if facts["cfg"]:
            at = facts["cfg"][0]
            mem[at : at + ps] = (0x2_3456_7000 if ps == 8 else 0x0345_6000).to_bytes(ps, "little")
            plants["cfg"] = at
        at = facts["iat"][1]
        mem[at : at + ps] = (0x2_3456_8000 if ps == 8 else 0x0345_7000).to_bytes(ps, "little")
        plants["iat"] = at
        stub_region = []
        if ps == 8:
            # hotpatch look-alike: EB F9 + E9 at F-5 into a fake HPAT stub in private memory,
            # whose pointer leads into private memory too (no patch image)
            f = facts["functions"][len(facts["functions"]) // 2]
            stub = STUB_AREA + 0x40
            mem[f - 5 : f] = b"\xe9" + struct.pack("<i", stub - (base + f))
            mem[f : f + 2] = b"\xeb\xf9"
            page = bytearray(0x2000)
            page[0x40:0x48] = b"\xff\x25\xfa\x0f\x00\x00\xcc\xcc"
            page[0x1040:0x1048] = struct.pack("<Q", STUB_AREA + 0x1800)
            stub_region = [(STUB_AREA, bytes(page))]
            plants["lookalike"] = f - 5
            # a hook keeping the old first byte: 48 B8 imm64 FF E0 over 48 8B C4 / 48 89 ...
            g = _fn_with_rex(img, facts, b"\x48")
            mem[g : g + 12] = b"\x48\xb8" + struct.pack("<Q", STUB_AREA + 0x1800) + b"\xff\xe0"
            plants["movabs"] = g
        # a padded section tail holding something else than both zeros and the file's padding
        if path.name in LAUNCHERS:
            at = rsrc_rva + rsrc_size + 4  # inside the PADDINGXX tail of .rsrc
            mem[at] = 0x90
            plants["tail"] = at
        for modules in (True, False):
            result = _verify(path, mem, fakes, base, stub_region, modules=modules)
            (m,) = result.modules
            assert m.status == "ok", (path, m)
            shown = [f for f in result.findings if f.verdict != Verdict.LOADER]
            for what, rva in plants.items():
                got = _covering(shown, rva)
                assert got, (path, tails, modules, what)
                (f,) = got
                slot = what in ("cfg", "iat")
                want = Verdict.UNVERIFIED if slot and not modules else Verdict.UNEXPLAINED
                assert f.verdict == want, (path, tails, modules, what, f)
                if slot and not modules:
                    assert "not verified" in f.reason and f.branch_target is not None
            if modules:
                assert len(shown) == len(plants), (path, tails, modules, shown)
            else:  # every bound slot is unverified then; nothing else beyond the plants
                unverified = {f.rva for f in shown if f.verdict == Verdict.UNVERIFIED}
                assert unverified == set(facts["iat"]) | set(facts["cfg"]), path
                assert len(shown) - len(unverified) == len(plants) - ("cfg" in plants) - 1
            if "movabs" in plants:
                (f,) = _covering(shown, plants["movabs"])
                assert f.rva == plants["movabs"], f  # the lead starts at the original instruction
                assert f.disassembly.startswith("movabs rax, ") and "jmp rax" in f.disassembly
                assert f.branch_target == STUB_AREA + 0x1800
                assert f.original_disassembly and not f.original_disassembly.startswith("movabs")
                assert f.extra["target_disassembly"] == "; ".join(["add byte ptr [rax], al"] * 3)
                (la,) = _covering(shown, plants["lookalike"])
                assert "HPAT pointer" in la.reason
                assert "not into a mapped hotpatch image" in la.reason
            assert m.pages_total == (m.pages_verified + m.pages_loader + m.pages_hotpatched
                                     + m.pages_unexplained + m.pages_unverified
                                     + m.pages_unavailable)
            assert m.pages_hotpatched == 0 and m.pages_unexplained >= 1
            assert (m.pages_unverified > 0) == (not modules)
            if "tail" in plants:
                assert m.section_tails == SEEN_ONE_OFF[tails], (path, m)


# The planted tail byte is one off either reading: compared against the closer one.
SEEN_ONE_OFF = {"zero": "neither", "file": "neither"}


def test_jmp_whose_last_byte_matches(real_pe_files):
    """E9 rel32 written over a function whose fifth byte equals rel32's top byte."""
    path = next(p for p in real_pe_files if p.name == "msvcp140.dll")
    img, fakes, facts = simulate(path, BASE)
    f = facts["functions"][100]
    rel = (img[f + 4] << 24) | 0x00_12_34_56
    rel -= 1 << 32 if rel >= 1 << 31 else 0
    mem = bytearray(img)
    mem[f : f + 5] = b"\xe9" + struct.pack("<i", rel)
    (got,) = [x for x in _verify(path, mem, fakes, BASE).findings if x.verdict != Verdict.LOADER]
    assert got.verdict == Verdict.UNEXPLAINED and got.rva == f and got.size == 4
    assert got.branch_target == BASE + f + 5 + rel and got.disassembly.startswith("jmp ")
    assert got.original_disassembly and got.target_owner == "unmapped"


def test_unverified_slots_of_a_lone_clean_image(real_pe_files):
    """No module list: every bound IAT/CFG slot is `unverified`, none hidden as `loader`."""
    path = next(p for p in real_pe_files if p.name == "vcruntime140.dll")
    img, fakes, facts = simulate(path, BASE)
    result = _verify(path, img, fakes, BASE, modules=False)
    (m,) = result.modules
    slots = {f.rva for f in result.findings}
    assert {f.verdict for f in result.findings} == {Verdict.UNVERIFIED}
    assert set(facts["iat"]) | set(facts["cfg"]) == slots
    assert all("not verified" in f.reason for f in result.findings)
    assert m.pages_unverified >= 1 and m.pages_unexplained == 0
    iat = [f for f in result.findings if f.extra["kind"] == "iat"]
    assert all(".dll" in f.reason for f in iat)  # which import the slot is for


def test_writable_relocations_say_not_verified(real_pe_files):
    path = next(p for p in real_pe_files if p.name == "vcruntime140.dll")
    img, fakes, facts = simulate(path, BASE)
    data_rva, data_size, _ = facts["sections"][".data"]
    import lief

    b = lief.PE.parse(str(path))
    rel = next(r.virtual_address + e.position for r in b.relocations for e in r.entries
               if str(e.type).endswith("DIR64")
               and data_rva <= r.virtual_address + e.position < data_rva + data_size)
    mem = bytearray(img)
    mem[rel : rel + 8] = struct.pack("<Q", 0x2_0000_0000)
    result = _verify(path, mem, fakes, BASE, include_loader=True)
    (f,) = _covering(result.findings, rel)
    assert f.verdict == Verdict.LOADER and "writable data is not verified" in f.reason
    assert "no longer holds the loader's value" in f.reason
    others = [x for x in result.findings if x.extra.get("kind") == "relocation"
              and data_rva <= x.rva < data_rva + data_size and x is not f]
    assert others and all("not verified" in x.reason for x in others)
    assert not [x for x in result.findings if x.verdict != Verdict.LOADER]


@pytest.mark.parametrize("tails", TAILS)
def test_pe_diff_cli_on_emulated_memory(cli, tmp_path, real_pe_files, tails):
    """`hpforensics pe diff` on a memory file the emulation wrote, as a user runs it."""
    path = next(p for p in real_pe_files if p.name == "t64.exe")
    img, fakes, facts = simulate(path, BASE, tails=tails)
    mem = bytearray(img)
    g = _fn_with_rex(img, facts, b"\x48")
    mem[g : g + 12] = b"\x48\xb8" + struct.pack("<Q", 0x2_3456_7000) + b"\xff\xe0"
    iat = facts["iat"][0]
    mem[iat : iat + 8] = struct.pack("<Q", 0x2_3456_8000)
    memfile = tmp_path / f"t64.exe@{BASE:x}.bin"
    memfile.write_bytes(bytes(mem))
    args = ["pe", "diff", "--disk", path, "--memory", memfile, "--base", hex(BASE)]
    doc = json.loads(cli(*args, "-f", "json", "--all", check=True).stdout)
    (m,) = doc["modules"]
    assert m["section_tails"] == {"zero": "zero-filled", "file": "file padding"}[tails]
    by = {}
    for f in doc["findings"]:
        by.setdefault(f["verdict"], []).append(f)
    (hook,) = by["unexplained"]
    assert hook["rva"] == hex(g) and hook["branch_target"] == "0x234567000"
    assert hook["disassembly"].startswith("movabs rax, 0x234567000")
    assert hook["original_disassembly"]
    assert "iat" in {f["extra"]["kind"] for f in by["unverified"]}  # no --module given
    assert hex(iat) in {f["rva"] for f in by["unverified"]}
    tail = [f for f in by["loader"] if f["extra"].get("kind") == "section-tail"]
    assert len(tail) == (1 if tails == "file" else 0)
    assert all(f["reason"] == "section tail holds the file's padding (mapped as in the file)"
               for f in tail)
    table = cli(*args, check=True).stdout  # the default view shows both, side by side
    assert "│ unverified" in table and "│ unexplained" in table
    assert "Original code" in table and "Code now" in table and "movabs rax" in table
    assert "Section tails" in table


def test_tail_mapped_to_file_alignment(tmp_path, real_pe_files):
    """No public file has SizeOfRawData beyond VirtualSize rounded to FileAlignment, so t64.exe
    with its .rsrc VirtualSize cut by 0x200 stands in: all three readings are told apart."""
    import lief
    from loader_sim import FALIGN

    src = next(p for p in real_pe_files if p.name == "t64.exe")
    data = bytearray(src.read_bytes())
    b = lief.PE.parse(str(src))
    index = [s.name for s in b.sections].index(".rsrc")
    header = (b.dos_header.addressof_new_exeheader + 24 + b.header.sizeof_optional_header
              + 40 * index)
    vsize = struct.unpack_from("<I", data, header + 8)[0] - 0x200
    struct.pack_into("<I", data, header + 8, vsize)
    path = tmp_path / "t64.exe"
    path.write_bytes(bytes(data))
    seen = {}
    for mode in (*TAILS, FALIGN):
        img, fakes, _ = simulate(path, BASE, tails=mode)
        result = _verify(path, img, fakes, BASE, include_loader=True)
        (m,) = result.modules
        assert [f for f in result.findings if f.verdict != Verdict.LOADER] == [], mode
        seen[mode] = m.section_tails
        tail = [f for f in result.findings if f.extra.get("kind") == "section-tail"]
        assert len(tail) == (mode != "zero")
    assert seen == {"zero": "zero-filled", "file": "file padding",
                    FALIGN: "file padding to FileAlignment"}
    # a byte planted in the part only the page-wide reading maps is still a finding
    img, fakes, _ = simulate(path, BASE, tails=FALIGN)
    mem = bytearray(img)
    rsrc = b.sections[index].virtual_address
    at = rsrc + ((vsize + 0x1FF) & ~0x1FF) + 2
    mem[at] = 0xCC
    shown = [f for f in _verify(path, mem, fakes, BASE).findings if f.verdict != Verdict.LOADER]
    assert [(f.rva, f.verdict) for f in shown] == [(at, Verdict.UNEXPLAINED)]
