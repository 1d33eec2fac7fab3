"""The bundled hotpatch samples (samples/pe/plan.json): every planted change gets the verdict
the plan names, with the patch image, sequence, function and branch target it names, and
nothing else is reported."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpforensics.engine import verify_space
from hpforensics.sources.files import FilesSpace
from hpforensics.model import Verdict
from hpforensics.reference.provider import FileReferences
from hpforensics.space import MappedImage

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "pe"
PLAN = json.loads((SAMPLES / "plan.json").read_text())


def _int(v):
    return int(v, 0) if isinstance(v, str) else v


def build(scenario: dict):
    images, regions, files = [], [], {}
    for r in scenario["regions"]:
        data = (SAMPLES / r["file"]).read_bytes()
        base = _int(r["base"])
        if r["kind"] == "image":
            im = MappedImage(base, _int(r["size"]), f"C:\\Windows\\System32\\{r['path']}",
                             r["module"], is_patch_image=r["is_patch_image"],
                             timestamp=_int(r["timestamp"]),
                             checksum=_int(r["checksum"]))
            images.append((im, data))
            files[base] = str(SAMPLES / r["path"])
        else:
            regions.append((base, data))
    targets = [(MappedImage(_int(t["base"]), _int(t["size"]), name, name), b"")
               for name, t in PLAN["import_targets"].items()]
    space = FilesSpace(images + targets, regions, source=f"file:{scenario['name']}")
    return space, [im for im, _ in images], FileReferences(files)


@pytest.mark.parametrize("scenario", PLAN["scenarios"], ids=lambda s: s["name"])
def test_every_planted_change_gets_its_verdict(scenario):
    space, images, refs = build(scenario)
    kb = {"hpbase_hp1.dll": "KB5052105", "hpbase_hp2.dll": "KB5053636"}
    result = verify_space(space, refs, images=images, include_loader=True,
                          kb_lookup=lambda path: kb.get(Path(path).name))
    assert not result.warnings
    findings = result.findings
    planned = set()
    for c in scenario["changes"]:
        rva, size, verdict = _int(c["rva"]), c["size"], Verdict(c["verdict"])
        mine = [f for f in findings if f.module == c["module"]]
        if verdict == Verdict.LOADER:
            assert any(f.verdict == verdict and f.rva <= rva and rva + size <= f.rva + f.size
                       for f in mine), (c, [f for f in mine if f.verdict == verdict])
            continue
        planned.add((c["module"], rva, size, verdict))
        hit = [f for f in mine if (f.rva, f.size, f.verdict) == (rva, size, verdict)]
        assert len(hit) == 1, (c, [(hex(f.rva), f.size, f.verdict, f.reason) for f in mine
                                   if f.verdict != Verdict.LOADER])
        f = hit[0]
        if "patch_image" in c:
            assert Path(f.patch_image).name == c["patch_image"], (c, f)
            assert f.kb == kb.get(c["patch_image"], ""), (c, f)
        if "sequence" in c:
            assert f.sequence == c["sequence"], (c, f)
        if "function_rva" in c:
            assert f.function_rva == _int(c["function_rva"]), (c, f)
        if "branch_target" in c:
            assert f.branch_target == _int(c["branch_target"]), (c, f)
        assert f.reason
        if verdict == Verdict.HOTPATCH and c["kind"] == "hotpatch_redirect":
            assert f.target_owner.startswith(f"HPAT stub -> {c['patch_image']}+0x"), f
    others = {(f.module, f.rva, f.size, f.verdict) for f in findings if f.verdict != Verdict.LOADER}
    assert others == planned


@pytest.mark.parametrize("scenario", PLAN["scenarios"], ids=lambda s: s["name"])
def test_page_accounting(scenario):
    space, images, refs = build(scenario)
    result = verify_space(space, refs, images=images)
    bad_modules = {c["module"] for c in scenario["changes"] if c["verdict"] == "unexplained"}
    patched = {c["module"] for c in scenario["changes"] if c["verdict"] == "hotpatch"}
    for m in result.modules:
        assert m.status == "ok" and m.reference.startswith("disk:"), m
        assert m.pages_total == (m.pages_verified + m.pages_loader + m.pages_hotpatched
                                 + m.pages_unexplained + m.pages_unavailable)
        assert (m.pages_unexplained > 0) == (m.module in bad_modules), m
        assert m.pages_loader > 0
        if m.module in patched and m.module not in bad_modules:
            assert m.pages_hotpatched > 0, m
    assert {m.module for m in result.modules} == {im.name for im in images}


def test_paged_out_hpat_leaves_redirects_open():
    """HPAT pages missing from a dump: the redirects are `unavailable`, never called hooks;
    without any patch image mapped the same bytes are unexplained."""
    scenario = next(s for s in PLAN["scenarios"] if s["name"] == "hp1")
    space, images, refs = build(scenario)
    hpat = next(_int(r["base"]) for r in scenario["regions"] if r["kind"] == "hpat")
    absent = FilesSpace([(im, space.read(im.base, im.size).data) for im in images], [],
                        absent_pages=[hpat, hpat + 0x1000])
    base = images[0]
    result = verify_space(absent, refs, images=[base])
    redirects = [f for f in result.findings if f.module == base.name and f.size == 7]
    assert len(redirects) == 2 and {f.verdict for f in redirects} == {Verdict.UNAVAILABLE}
    assert all("cannot be verified" in f.reason for f in redirects)
    (m,) = result.modules
    assert m.pages_unexplained == 0 and m.pages_hotpatched == 0
    alone = FilesSpace([(base, space.read(base.base, base.size).data)], [])
    result = verify_space(alone, refs, images=[base])
    assert {f.verdict for f in result.findings if f.size == 7} == {Verdict.UNEXPLAINED}
