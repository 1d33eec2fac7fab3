"""Real Microsoft-built DLLs and pip's launchers, loaded (by an independent simulation) at a
base other than their preferred one: the engine must explain every difference as `loader`,
and must report changes planted on top."""
from __future__ import annotations

import struct

import pytest
from loader_sim import TAILS, simulate, space_for

from hpforensics.engine import verify_space
from hpforensics.model import Verdict
from hpforensics.reference.provider import FileReferences

BASE = 0x7FF8_1234_0000


def _verify(path, img, fakes, **kw):
    space = space_for(path, BASE, img, fakes, **kw)
    return verify_space(space, FileReferences({BASE: str(path)}), images=[space.images()[0]])


# What each real file's tails were seen as, per loader-emulation mode: files whose padding
# past VirtualSize is all zero have nothing to see ("").
PADDED = {"t64.exe", "w64.exe", "t32.exe", "w32.exe"}
SEEN = {"zero": "zero-filled", "file": "file padding"}


@pytest.mark.parametrize("tails", TAILS)
def test_clean_images_only_loader_differences(real_pe_files, tails):
    for path in real_pe_files:
        img, fakes, facts = simulate(path, BASE, tails=tails)
        result = _verify(path, img, fakes)
        assert [f for f in result.findings if f.verdict != Verdict.LOADER] == [], path
        (m,) = result.modules
        assert m.status == "ok" and m.reference == f"disk:{path}"
        assert m.pages_total > 0 and m.pages_loader > 0, (path, m)
        assert m.pages_verified + m.pages_loader == m.pages_total, (path, m)
        assert m.pages_unexplained == m.pages_hotpatched == m.pages_unavailable == 0
        assert m.pages_unverified == 0
        assert m.section_tails == (SEEN[tails] if path.name in PADDED else ""), (path, m)
        assert bool(facts["padded_tails"]) == (path.name in PADDED and tails == "file")


def test_loader_findings_name_their_kind(real_pe_files):
    path = next(p for p in real_pe_files if p.name == "vcruntime140.dll")
    img, fakes, _ = simulate(path, BASE)
    space = space_for(path, BASE, img, fakes)
    from hpforensics.engine import verify_image
    from hpforensics.reference import build_expected

    findings, summary = verify_image(space, space.images()[0], build_expected(path, BASE),
                                     include_loader=True)
    kinds = {f.extra["kind"] for f in findings}
    assert {"iat", "cfg-pointer", "security-cookie", "function-override"} <= kinds
    assert all(f.verdict == Verdict.LOADER for f in findings)
    fo = [f for f in findings if f.extra["kind"] == "function-override"]
    assert [f.rva for f in fo] == [0x13011]


@pytest.mark.parametrize("tails", TAILS)
def test_planted_changes_are_unexplained(real_pe_files, tails):
    for path in real_pe_files:
        img, fakes, facts = simulate(path, BASE, tails=tails)
        mem = bytearray(img)
        text_rva, text_size = facts["text"]
        hook = text_rva + 0x40
        mem[hook : hook + 5] = b"\xe9" + struct.pack("<i", 0x10_0000)  # jmp far outside
        iat = facts["iat"][0]
        mem[iat : iat + 8] = struct.pack("<Q", 0x4141_4141_0000)
        reloc = facts["relocs"][len(facts["relocs"]) // 2]
        mem[reloc : reloc + 8] = struct.pack("<Q", 0x7FF7_0000_1000)
        result = _verify(path, bytes(mem), fakes)
        bad = [f for f in result.findings if f.verdict == Verdict.UNEXPLAINED]
        by_rva = {f.rva: f for f in bad}
        # the lead starts at the original instruction holding the first changed byte
        (lead,) = [f for f in bad if f.rva <= hook < f.rva + f.size]
        assert hook - lead.rva < 16
        assert lead.rva == hook or lead.extra["first_changed"] == hex(BASE + hook)
        assert lead.branch_target == BASE + hook + 5 + 0x10_0000, (path, lead)
        assert "jmp" in lead.disassembly and lead.original_disassembly
        assert lead.target_owner == "unmapped"
        assert iat in by_rva and "IAT hook" in by_rva[iat].reason
        assert by_rva[iat].target_owner == "unmapped"
        assert reloc in by_rva and "relocated" in by_rva[reloc].reason, (path, bad)
        assert len(bad) == 3, (path, bad)
        (m,) = result.modules
        assert m.pages_unexplained >= 2


def test_absent_pages_are_unavailable_not_modified(real_pe_files):
    path = real_pe_files[0]
    img, fakes, facts = simulate(path, BASE)
    text_rva, _ = facts["text"]
    mem = bytearray(img)
    mem[text_rva + 0x10 : text_rva + 0x20] = b"\xcc" * 16  # change on a page we cannot read
    result = _verify(path, bytes(mem), fakes, absent_pages=[BASE + text_rva])
    (m,) = result.modules
    assert m.pages_unavailable == 1 and m.pages_unexplained == 0
    (f,) = [f for f in result.findings if f.verdict != Verdict.LOADER]
    assert f.verdict == Verdict.UNAVAILABLE and f.rva == text_rva and f.size == 0x1000


def test_findings_are_deterministic(real_pe_files):
    path = real_pe_files[1]
    img, fakes, facts = simulate(path, BASE)
    mem = bytearray(img)
    for k in range(5):
        at = facts["text"][0] + 0x100 * (5 - k)
        mem[at : at + 2] = b"\x90\x90"
    a = _verify(path, bytes(mem), fakes).findings
    b = _verify(path, bytes(mem), fakes).findings
    assert a == b and [f.address for f in a] == sorted(f.address for f in a)


@pytest.mark.parametrize("tails", TAILS)
def test_pe32_images(real_pe_files, tails):
    """32-bit launchers beside the 64-bit ones: HIGHLOW relocations, 4-byte IAT slots."""
    folder = next(p for p in real_pe_files if p.name == "t64.exe").parent
    base = 0x1234_0000
    for path in (folder / "t32.exe", folder / "w32.exe"):
        img, fakes, facts = simulate(path, base, tails=tails)
        space = space_for(path, base, img, fakes)
        result = verify_space(space, FileReferences({base: str(path)}), images=[space.images()[0]])
        assert [f for f in result.findings if f.verdict != Verdict.LOADER] == [], path
        assert result.modules[0].pages_loader > 0
        assert result.modules[0].section_tails == SEEN[tails]
        mem = bytearray(img)
        iat = facts["iat"][3]
        mem[iat : iat + 4] = struct.pack("<I", 0x0BAD_0000)
        space = space_for(path, base, bytes(mem), fakes)
        result = verify_space(space, FileReferences({base: str(path)}), images=[space.images()[0]])
        (f,) = [f for f in result.findings if f.verdict != Verdict.LOADER]
        assert f.rva == iat and f.size == 4
        assert f.branch_target == 0x0BAD_0000 and "IAT hook" in f.reason


def test_wholly_different_image_is_bounded(real_pe_files):
    """A hollowed module (every code byte replaced): bounded findings, every page unexplained."""
    path = next(p for p in real_pe_files if p.name == "msvcp140.dll")
    img, fakes, facts = simulate(path, BASE)
    mem = bytearray(img)
    start, size = facts["text"]
    for at in range(start, start + size - 4, 16):  # 4 bytes of every 16: ~20000 short runs
        mem[at : at + 4] = bytes(b ^ 0xA5 for b in img[at : at + 4])
    result = _verify(path, bytes(mem), fakes)
    (m,) = result.modules
    assert m.pages_unexplained >= (size >> 12)
    assert len(result.findings) <= 4096 + 1 + 64
    (rest,) = [f for f in result.findings if "not listed one by one" in f.reason]
    assert int(rest.extra["ranges"]) > 10000


def test_arm64_launcher_branch_hook():
    """pip's ARM64 launcher: clean at another base; a planted B imm26 is decoded."""
    import pip._vendor.distlib as distlib
    from pathlib import Path

    path = Path(distlib.__file__).parent / "t64-arm.exe"
    img, fakes, facts = simulate(path, BASE)
    result = _verify(path, img, fakes)
    assert [f for f in result.findings if f.verdict != Verdict.LOADER] == []
    mem = bytearray(img)
    hook = facts["text"][0] + 0x40
    mem[hook : hook + 4] = struct.pack("<I", 0x14000000 | 0x40000)  # b +0x100000
    (f,) = [f for f in _verify(path, bytes(mem), fakes).findings if f.verdict != Verdict.LOADER]
    assert f.verdict == Verdict.UNEXPLAINED and f.rva == hook
    assert f.branch_target == BASE + hook + 0x100000 and f.disassembly.startswith("b ")
