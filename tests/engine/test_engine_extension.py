"""Hotpatch extension pages past SizeOfImage (24H2): the SCP CFG page against ntdll's own
SCPCFG* section, the HPAT pages, CFG pointers into ntdll's extension page, and what an
attacker can do there. The hp1 sample (hpbase.dll patched by hpbase_hp1.dll) is laid out as
a 24H2 memory manager maps it: image, SCP CFG page, HPAT stub page, HPAT pointer page."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

from hpforensics.engine import verify_space
from hpforensics.model import Verdict
from hpforensics.reference.provider import FileReferences
from hpforensics.space import BytesAddressSpace, MappedImage

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "pe"
PLAN = json.loads((SAMPLES / "plan.json").read_text())
sys.path.insert(0, str(REPO / "samples"))
from memimage.scenario import SCP_OFFSETS, ntdll_image, scp_page  # noqa: E402

NTDLL_BASE = int(PLAN["import_targets"]["ntdll.dll"]["base"], 16)
NTDLL_SIZE = int(PLAN["import_targets"]["ntdll.dll"]["size"], 16)


def _int(v):
    return int(v, 0) if isinstance(v, str) else v


def space_of(ext_edit=None, ntdll: bool = True, scenario: str = "hp1", hpbase_edit=None):
    sc = next(s for s in PLAN["scenarios"] if s["name"] == scenario)
    regions, files, hpbase = [], {}, None
    hpats = {_int(r["base"]): (SAMPLES / r["file"]).read_bytes() for r in sc["regions"]
             if r["kind"] == "hpat"}
    for r in sc["regions"]:
        if r["kind"] != "image":
            continue
        data = bytearray((SAMPLES / r["file"]).read_bytes())
        base, size = _int(r["base"]), _int(r["size"])
        mapped = None
        if not r["is_patch_image"]:
            ext = bytearray(scp_page(NTDLL_BASE) + hpats.get(base + size + 0x1000, bytes(0x2000)))
            if ext_edit:
                ext_edit(ext)
            if hpbase_edit:
                hpbase_edit(data)
            data += ext
            mapped = len(data)
        im = MappedImage(base, size, f"C:\\Windows\\System32\\{r['path']}", r["module"],
                         is_patch_image=r["is_patch_image"], timestamp=_int(r["timestamp"]),
                         checksum=_int(r["checksum"]), mapped_size=mapped)
        if not r["is_patch_image"]:
            hpbase = im
        regions.append((im, bytes(data)))
        files[base] = str(SAMPLES / r["path"])
    if ntdll:
        img = ntdll_image(NTDLL_BASE, NTDLL_SIZE, 0x5A3C0009)[:0x3000]
        regions.append((MappedImage(NTDLL_BASE, NTDLL_SIZE, "C:\\Windows\\System32\\ntdll.dll",
                                    "ntdll.dll", mapped_size=NTDLL_SIZE + 0x1000),
                        img.ljust(NTDLL_SIZE, b"\0") + scp_page(NTDLL_BASE)))
    k32 = PLAN["import_targets"]["kernel32.dll"]
    regions.append((MappedImage(_int(k32["base"]), _int(k32["size"]), "kernel32.dll",
                                "kernel32.dll"), b""))
    space = BytesAddressSpace(regions, source="file:test")
    return space, hpbase, FileReferences(files)


def verify(space, hpbase, refs):
    return verify_space(space, refs, images=[hpbase])


def test_clean_extension_gives_no_finding_and_is_accounted():
    result = verify(*space_of())
    planned = {(_int(c["rva"]), c["size"]) for s in PLAN["scenarios"] if s["name"] == "hp1"
               for c in s["changes"] if c["module"] == "hpbase.dll" and c["verdict"] == "hotpatch"}
    assert {(f.rva, f.size) for f in result.findings} == planned
    assert all(f.verdict is Verdict.HOTPATCH for f in result.findings)
    assert all("extension pages" in f.reason for f in result.findings if f.function_rva)
    (m,) = result.modules
    assert (m.extension_pages, m.extension_unexplained, m.hpat_stubs_used) == (3, 0, 2)
    assert m.hpat_stubs_free == 0 and m.extension_content.startswith("SCPCFGES page")


def test_scp_page_changed_code_and_retargeted_handler_are_unexplained():
    def edit(ext: bytearray) -> None:
        ext[SCP_OFFSETS[0] + 0x10] ^= 0xFF  # a byte of the dispatch function's code
        struct.pack_into("<Q", ext, SCP_OFFSETS[4] + 2, 0x4242_0000_0000)  # handler -> nowhere
    space, hpbase, refs = space_of(edit)
    bad = [f for f in verify(space, hpbase, refs).findings if f.verdict is Verdict.UNEXPLAINED]
    ext = hpbase.base + 0x5000
    assert [f.address for f in bad] == [ext + SCP_OFFSETS[0] + 0x10, ext + SCP_OFFSETS[4] + 2]
    assert all("differs from ntdll.dll's SCPCFGES section" in f.reason for f in bad)


def test_scp_page_without_ntdll_is_unverified_not_loader():
    result = verify(*space_of(ntdll=False))
    (f,) = [f for f in result.findings if f.rva >= 0x5000]  # (CFG slots now lead nowhere)
    assert f.verdict is Verdict.UNVERIFIED and "no ntdll.dll" in f.reason
    assert f.address == result.modules[0].module_base + 0x5000


def test_hpat_slot_repointed_and_stub_without_slot():
    def edit(ext: bytearray) -> None:
        # a used stub's slot (entry 1) aimed at the base image is allowed (back into it);
        # a new stub (entry 9) aimed at kernel32.dll is not a patch image
        struct.pack_into("<Q", ext, 0x2000 + 8, 0x7FFB12341000)
        ext[0x1000 + 72 : 0x1000 + 80] = bytes.fromhex("FF25FA0F0000CCCC")
        k32_base = int(PLAN["import_targets"]["kernel32.dll"]["base"], 16)
        struct.pack_into("<Q", ext, 0x2000 + 72, k32_base + 0x10)
        struct.pack_into("<Q", ext, 0x2000 + 200, 0x1234)  # slot without a stub
    space, hpbase, refs = space_of(edit)
    result = verify(space, hpbase, refs)
    bad = sorted((f for f in result.findings
                  if f.verdict is Verdict.UNEXPLAINED and f.rva >= 0x5000), key=lambda f: f.rva)
    assert [(f.rva, f.size) for f in bad] == [(0x7000 + 72, 8), (0x7000 + 200, 8)]
    assert "kernel32.dll+0x10" in bad[0].reason
    assert "no redirect in this image uses it" in bad[0].reason
    assert "its stub entry is empty" in bad[1].reason
    (m,) = result.modules
    assert m.hpat_stubs_used == 2 and m.extension_unexplained == 1


def test_code_in_extension_is_unexplained_with_its_target():
    shell = bytes.fromhex("48B8") + struct.pack("<Q", 0x7FFB2A3B0010) + bytes.fromhex("FFE0")
    space, hpbase, refs = space_of(lambda ext: ext.__setitem__(slice(0x1800, 0x180C), shell))
    (f,) = [f for f in verify(space, hpbase, refs).findings if f.verdict is Verdict.UNEXPLAINED]
    assert f.rva == 0x6800 and f.size == 12 and f.disassembly.startswith("movabs rax")
    assert f.branch_target == 0x7FFB2A3B0010 and f.target_owner == "kernel32.dll+0x10"


def test_cfg_pointer_into_ntdll_extension_page_is_loader():
    """24H2 points CFG slots at the SCP CFG functions in ntdll's extension page."""
    scp_fn = NTDLL_BASE + NTDLL_SIZE + SCP_OFFSETS[2]
    space, hpbase, refs = space_of(hpbase_edit=lambda d: struct.pack_into("<Q", d, 0x2000, scp_fn))
    result = verify_space(space, refs, images=[hpbase], include_loader=True)
    (slot,) = [f for f in result.findings if f.rva == 0x2000
               and f.extra.get("kind") == "cfg-pointer"]
    assert slot.verdict is Verdict.LOADER
    assert "ntdll.dll+0x1f8140 (hotpatch extension page)" in slot.reason
    # ... but an IAT slot there is a hook: imports never lead into extension pages
    iat = next(_int(c["rva"]) for s in PLAN["scenarios"] if s["name"] == "hp1"
               for c in s["changes"] if c["kind"] == "iat")
    space, hpbase, refs = space_of(hpbase_edit=lambda d: struct.pack_into("<Q", d, iat, scp_fn))
    (f,) = [f for f in verify(space, hpbase, refs).findings if f.rva == iat]
    assert f.verdict is Verdict.UNEXPLAINED and "IAT hook" in f.reason


def test_stub_in_another_images_extension_is_not_this_images_hpat():
    """A redirect whose E9 lands on an HPAT-shaped stub in ntdll's extension page."""
    space, hpbase, refs = space_of()
    ntdll_ext = NTDLL_BASE + NTDLL_SIZE
    regions = []
    for im, data in space._regions:
        if im.name == "ntdll.dll":
            d = bytearray(data)
            d[NTDLL_SIZE + 0x800 : NTDLL_SIZE + 0x808] = bytes.fromhex("FF25FA0F0000CCCC")
            data = bytes(d)
        if im.name == "hpbase.dll":
            f = next(_int(c["function_rva"]) for s in PLAN["scenarios"] if s["name"] == "hp1"
                     for c in s["changes"] if c["kind"] == "hotpatch_redirect")
            d = bytearray(data)
            struct.pack_into("<i", d, f - 4, (ntdll_ext + 0x800) - (im.base + f))
            data = bytes(d)
        regions.append((im, data))
    space = BytesAddressSpace(regions, source="file:test")
    bad = [f for f in verify(space, hpbase, refs).findings if f.verdict is Verdict.UNEXPLAINED
           and f.function_rva is not None]
    assert len(bad) == 1 and "extension pages of ntdll.dll, not of this image" in bad[0].reason


def _verifier(machine: int, ext: bytes):
    from hpforensics.classify.extension import ExtensionVerifier
    from hpforensics.classify.owners import AddressMap
    from hpforensics.classify.verdicts import Context

    base = 0x1000_0000
    im = MappedImage(base, 0x1000, "C:\\x.dll", "x.dll", mapped_size=0x1000 + len(ext))
    space = BytesAddressSpace([(im, bytes(0x1000) + ext)], source="file:x")
    ctx = Context(space, AddressMap([im], space), [], others_known=False)
    return base, ExtensionVerifier(ctx, im, 1, 2, machine, set()).run()


def test_i386_stubs_carry_the_absolute_slot_address():
    base = 0x1000_0000
    ext = bytearray(0x2000)
    stub = base + 0x1000 + 0x18
    ext[0x18:0x20] = b"\xff\x25" + struct.pack("<I", stub + 0x1000) + b"\xcc\xcc"
    struct.pack_into("<I", ext, 0x1018, base + 0x10)  # back into the image
    _, out = _verifier(0x14C, bytes(ext))
    assert out.findings == [] and out.stubs_used == 1
    # the AMD64 stub form in a 32-bit image is not an i386 stub
    ext[0x18:0x20] = bytes.fromhex("FF25FA0F0000CCCC")
    _, out = _verifier(0x14C, bytes(ext))
    assert [(f.rva, f.verdict) for f in out.findings] == [(0x1018, Verdict.UNEXPLAINED),
                                                          (0x2018, Verdict.UNEXPLAINED)]


def test_arm64_extension_bytes_are_unverified_not_unexplained():
    ext = bytearray(0x1000)
    ext[0x10:0x14] = struct.pack("<I", 0x14000010)
    _, out = _verifier(0xAA64, bytes(ext))
    (f,) = out.findings
    assert f.verdict is Verdict.UNVERIFIED and "not known" in f.reason
