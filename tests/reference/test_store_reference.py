"""The page-hash store (and KB manifests with page hashes) as the reference when no file on disk
matches a module: stores built with `hpforensics store build` from the bundled samples and from
real DLLs, modules verified from memory alone (their own mapped headers, the patch images mapped
beside them), through the library, the live driver, `dump analyze` and the Volatility plugins."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for helper in ("engine", "memimage", "live"):
    sys.path.insert(0, str(TESTS / helper))

from loader_sim import simulate, space_for  # noqa: E402
from memimage_helpers import IMAGE, SYMBOLS, run_vol  # noqa: E402
from test_engine_samples import PLAN, build  # noqa: E402

from hpforensics.engine import verify_space  # noqa: E402
from hpforensics.model import Verdict  # noqa: E402
from hpforensics.reference import ChainReferences, DiskReferences  # noqa: E402
from hpforensics.reference.provider import FileReferences  # noqa: E402
from hpforensics.kb.known_pages import page_digests  # noqa: E402
from hpforensics.kb.store_references import open_references  # noqa: E402

REPO = TESTS.parent
SAMPLES = REPO / "samples" / "pe"
SAMPLE_FILES = sorted([*SAMPLES.glob("*.dll"), *SAMPLES.glob("*.sys")])
KB = "KB5077212"
BASE = 0x7FF8_1234_0000
ZERO = "page reads as all zeros (likely not acquired)"
NO_VERSION = "page matches no known version in the store"


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory, cli) -> Path:
    db = tmp_path_factory.mktemp("store") / "samples.db"
    cli("store", "build", *SAMPLE_FILES, "--db", db, "--kb", KB, "-j", "1", check=True)
    return db


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, real_pe_files, cli) -> Path:
    db = tmp_path_factory.mktemp("store") / "real.db"
    cli("store", "build", *real_pe_files, "--db", db, "--kb", "KB5052105", "-j", "1", check=True)
    return db


@pytest.fixture(scope="module")
def cli():
    """`hpforensics ...` in a subprocess (the shared fixture, at module scope)."""

    def run(*args, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "hpforensics", *map(str, args)],
                              capture_output=True, text=True, cwd=REPO)
        assert not check or proc.returncode == 0, proc.stderr
        return proc

    return run


def _int(v):
    return int(v, 0) if isinstance(v, str) else v


def test_memory_pages_hash_like_the_store_normaliser(real_pe_files):
    """The provider's digests are hpforensics.kb.normalize's, byte for byte, for a mapped copy
    at another base (so stored file pages and memory pages meet)."""
    from hpforensics.kb.normalize import normalize

    for path in real_pe_files:
        img, _, _ = simulate(path, BASE)
        file_norm = normalize(path.read_bytes(), path.name)
        mem_norm = normalize(img, path.name, mapped=True, mask=file_norm.mask)
        mine = page_digests(img, sorted(file_norm.pages), file_norm.mask, file_norm.algo)
        assert mine == mem_norm.pages == file_norm.pages, path


@pytest.mark.parametrize("scenario", PLAN["scenarios"], ids=lambda s: s["name"])
def test_samples_verified_by_the_store_alone(scenario, sample_store):
    space, images, _ = build(scenario)
    result = verify_space(space, open_references([], sample_store), images=images)
    assert not result.warnings
    facts = PLAN["files"]
    for m in result.modules:
        ts = _int(facts[m.module]["timestamp"])
        assert m.reference == f"store:{sample_store}:{m.module}/{ts:#x}/{KB}", m
        assert m.status == "ok" and m.pages_total >= 1
        assert m.pages_total == (m.pages_verified + m.pages_loader + m.pages_hotpatched
                                 + m.pages_unexplained + m.pages_unavailable)
    findings = [f for f in result.findings if f.verdict != Verdict.LOADER]
    for c in scenario["changes"]:
        mod, rva, size = c["module"], _int(c["rva"]), c["size"]
        if c["verdict"] == "hotpatch":
            hit = [f for f in findings if (f.module, f.rva, f.size, f.verdict)
                   == (mod, rva, size, Verdict.HOTPATCH)]
            assert len(hit) == 1, (c, findings)
            assert Path(hit[0].patch_image.replace("\\", "/")).name == c["patch_image"]
            assert hit[0].sequence == c["sequence"]
        elif c["verdict"] == "unexplained":
            assert any(f.module == mod and f.verdict == Verdict.UNEXPLAINED
                       and f.rva <= rva and rva + size <= f.rva + f.size for f in findings), c
    attacked = {c["module"] for c in scenario["changes"] if c["verdict"] == "unexplained"}
    assert {f.module for f in findings if f.verdict == Verdict.UNEXPLAINED} == attacked
    by_module = {m.module: m for m in result.modules}
    if scenario["name"] == "clean":
        (m,) = result.modules
        assert m.pages_verified == m.pages_total and not findings
    if scenario["name"] == "attacked":
        m = by_module["hpbase.dll"]
        assert m.pages_unexplained == 1 and m.pages_hotpatched == 0
        page = [f for f in findings if f.reason == NO_VERSION]
        assert page and all(f.expected == b"" for f in page)
        # the genuine redirects on that page are still hotpatch, the forged one is not
        assert {f.rva for f in findings if f.verdict == Verdict.HOTPATCH
                and f.module == "hpbase.dll"} == {0x100B, 0x102B}
        assert by_module["forged_hp.dll"].pages_verified == 1


def test_real_dlls_at_another_base(real_pe_files, real_store):
    refs = open_references([], real_store)
    for path in real_pe_files:
        img, fakes, facts = simulate(path, BASE)
        space = space_for(path, BASE, img, fakes)
        result = verify_space(space, refs, images=[space.images()[0]])
        (m,) = result.modules
        assert m.reference.startswith(f"store:{real_store}:{path.name.lower()}/0x"), m
        assert m.pages_total > 0 and m.pages_verified == m.pages_total, (path, m)
        assert result.findings == [], (path, result.findings)
        # planted: a jmp in the first code page, a lost (zeroed) code page, an IAT hook
        mem = bytearray(img)
        text = facts["text"][0]
        mem[text + 0x40 : text + 0x45] = b"\xe9" + struct.pack("<i", 0x10_0000)
        lost = (text + 0x3000) & ~0xFFF
        mem[lost : lost + 0x1000] = bytes(0x1000)
        iat = facts["iat"][0]
        mem[iat : iat + 8] = struct.pack("<Q", 0x4141_4141_0000)
        space = space_for(path, BASE, bytes(mem), fakes)
        result = verify_space(space, refs, images=[space.images()[0]])
        (m,) = result.modules
        hook_page = (text + 0x40) & ~0xFFF
        got = {(f.rva, f.verdict, f.reason) for f in result.findings if f.size == 0x1000}
        assert got == {(hook_page, Verdict.UNEXPLAINED, NO_VERSION),
                       (lost, Verdict.UNAVAILABLE, ZERO)}, path
        assert any(f.rva == iat and f.reason.startswith("IAT hook") for f in result.findings)
        assert (m.pages_unexplained, m.pages_unavailable) == (1, 1), m
        assert m.pages_verified == m.pages_total - 2


def test_zeroed_code_page_is_unavailable_against_a_file(real_pe_files):
    """Engine rule: a code page reading as zeros where the file's is not was lost in
    acquisition; it is counted unavailable, not one big unexplained finding."""
    path = next(p for p in real_pe_files if p.name == "msvcp140.dll")
    img, fakes, facts = simulate(path, BASE)
    mem = bytearray(img)
    lost = (facts["text"][0] + 0x3000) & ~0xFFF
    mem[lost : lost + 0x2000] = bytes(0x2000)
    space = space_for(path, BASE, bytes(mem), fakes)
    result = verify_space(space, FileReferences({BASE: str(path)}), images=[space.images()[0]])
    (m,) = result.modules
    assert [(f.rva, f.size, f.verdict, f.reason) for f in result.findings] == [
        (lost, 0x2000, Verdict.UNAVAILABLE, ZERO)]
    assert m.pages_unavailable == 2 and m.pages_unexplained == 0
    # a page that is zero in the file too is simply verified
    clean = verify_space(space_for(path, BASE, img, fakes), FileReferences({BASE: str(path)}),
                         images=[space.images()[0]]).modules[0]
    assert m.pages_verified == clean.pages_verified - 2


def test_files_first_then_the_store(tmp_path, sample_store):
    """--reference folders answer first; a module with no matching file falls to the store."""
    scenario = next(s for s in PLAN["scenarios"] if s["name"] == "hp1")
    space, images, _ = build(scenario)
    shutil.copy(SAMPLES / "hpbase.dll", tmp_path)
    refs = open_references([tmp_path], sample_store)
    assert isinstance(refs, ChainReferences) and isinstance(refs.providers[0], DiskReferences)
    result = verify_space(space, refs, images=images)
    got = {m.module: m.reference.split(":")[0] for m in result.modules}
    assert got == {"hpbase.dll": "disk", "hpbase_hp1.dll": "store"}
    assert {(f.rva, f.verdict) for f in result.findings if f.module == "hpbase.dll"} == {
        (0x100B, Verdict.HOTPATCH), (0x102B, Verdict.HOTPATCH)}


def test_live_driver_uses_the_store_when_the_file_is_gone(sample_store):
    from test_live_windows_driver import OneProcess

    from hpforensics.live.options import build_options
    from hpforensics.live.space import scan_live

    scenario = next(s for s in PLAN["scenarios"] if s["name"] == "attacked")
    backend = OneProcess(scenario)
    backend.space.open_file = lambda region: (None, "deleted")  # replaced on disk
    result = scan_live(backend, options=build_options([], None, sample_store, None, False))
    refs = {m.module: m.reference for m in result.modules}
    assert refs["hpbase.dll"].startswith(f"store:{sample_store}:hpbase.dll/0x66f1a000/")
    assert refs["kernel32.dll"] == "none"
    verdicts = {(f.module, f.rva): f.verdict for f in result.findings}
    assert verdicts[("hpbase.dll", 0x100B)] == Verdict.HOTPATCH
    assert verdicts[("hpbase.dll", 0x2018)] == Verdict.UNEXPLAINED  # the IAT hook
    assert verdicts[("hpbase_hp1.dll", 0x1059)] == Verdict.HOTPATCH
    # --store also names the KB of each patch image, as in dump analyze
    assert {f.kb for f in result.findings if f.verdict == Verdict.HOTPATCH} == {KB}


# -- the memory image, as a user runs it ------------------------------------------------------
MEMPLAN = json.loads((REPO / "samples" / "memimage-plan.json").read_text())


def _analyze(cli, out: Path, *args) -> dict:
    proc = cli("dump", "analyze", IMAGE, "--symbols", SYMBOLS, "-o", out, "-q", *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def store_run(tmp_path_factory, cli, sample_store) -> dict:
    return _analyze(cli, tmp_path_factory.mktemp("dump"), "--store", sample_store)


def _check_against_plan(report: dict, prefix: str) -> None:
    findings = report["findings"]
    modules = {(m["pid"], m["module"]): m for m in report["modules"]}
    sample_mods = {k: m for k, m in modules.items() if k[1] in PLAN["files"]}
    assert sample_mods and all(m["reference"].startswith(prefix) for m in sample_mods.values())
    got = {(f["pid"], f["module"], _int(f["rva"]), f["size"]): f for f in findings}
    for e in MEMPLAN["expected_findings"]:
        key = (e["pid"], e["module"], _int(e["rva"]), e["size"])
        if e["verdict"] == "hotpatch":
            assert got[key]["verdict"] == "hotpatch", e
            assert got[key]["patch_image"].endswith(e["patch_image"]), e
            assert got[key]["sequence"] == e["sequence"], e
        elif e["verdict"] == "unexplained":
            assert any(f["pid"] == e["pid"] and f["module"] == e["module"]
                       and f["verdict"] == "unexplained"
                       and _int(f["rva"]) <= key[2] < _int(f["rva"]) + f["size"]
                       for f in findings), e
    assert {f["pid"] for f in findings if f["verdict"] == "unexplained"} == \
        {e["pid"] for e in MEMPLAN["expected_findings"] if e["verdict"] == "unexplained"}
    for pid in (604, 4404, 5012):  # never patched, unlinked, loader claims only: code is clean
        m = modules[(pid, "hpbase.dll")]
        assert m["pages_verified"] == m["pages_total"] == 1, m
    assert modules[(3128, "hpbase.dll")]["pages_unexplained"] == 1
    assert modules[(None, "hpkern.sys")]["pages_hotpatched"] == 1
    assert modules[(604, "ntdll.dll")]["status"] == "no-reference"  # the store does not hold it


def test_dump_analyze_with_the_store_and_no_reference_folder(store_run, sample_store):
    _check_against_plan(store_run, f"store:{sample_store}:")
    assert store_run["inputs"]["store"] == str(sample_store)
    m = next(m for m in store_run["modules"] if m["pid"] == 1100 and m["module"] == "hpbase.dll")
    assert m["reference"] == f"store:{sample_store}:hpbase.dll/0x66f1a000/{KB}"


def test_dump_analyze_with_a_page_hash_manifest(tmp_path, cli):
    manifest = tmp_path / "KB5077212.json"
    folder = tmp_path / "update"
    folder.mkdir()
    for f in SAMPLE_FILES:
        shutil.copy(f, folder)
    cli("manifest", "import", folder, "--kb", KB, "-o", manifest, "-j", "1", check=True)
    report = _analyze(cli, tmp_path / "out", "--manifest", manifest)
    _check_against_plan(report, f"manifest:{manifest}:")
    kbs = {f["kb"] for f in report["findings"] if f["verdict"] == "hotpatch"}
    assert kbs == {KB}  # the same manifest names the KB of every patch image


def test_verify_plugin_shows_the_store_reference(sample_store):
    proc = run_vol("windows.hotpatch.Verify", "--store", str(sample_store), renderer="csv")
    assert proc.returncode == 0, proc.stderr
    import csv
    import io

    rows = {(r["PID"], r["Module"]): r for r in csv.DictReader(io.StringIO(proc.stdout))}
    hp = rows[("1024", "hpbase.dll")]
    assert hp["Reference"] == f"store:{sample_store}:hpbase.dll/0x66f1a000/{KB}"
    assert (hp["Pages"], hp["Hotpatched"], hp["Unexplained"]) == ("1", "1", "0")
    assert rows[("3128", "hpbase.dll")]["Unexplained"] == "1"


def test_next_process_copy_is_built_once(real_pe_files, real_store):
    """The same DLL in another process differs in its writable data: its expected image is
    reused; a copy whose code differs is not, and gets its own verdict."""
    import lief

    from hpforensics.kb.store_references import PageReferences

    path = next(p for p in real_pe_files if p.name == "vcruntime140.dll")
    img, fakes, facts = simulate(path, BASE)
    binary = lief.PE.parse(str(path))  # kept alive: its sections point into it
    data_sec = next(s for s in binary.sections
                    if s.characteristics & 0x80000000 and not s.characteristics & 0x20000000)
    other = bytearray(img)
    other[data_sec.virtual_address + 8] ^= 0xFF  # a global of the other process
    hooked = bytearray(img)
    hooked[facts["text"][0] + 0x40] ^= 0xFF
    refs = open_references([], real_store)
    assert isinstance(refs, PageReferences)
    got = []
    for mem in (img, bytes(other), bytes(hooked)):
        space = space_for(path, BASE, bytes(mem), fakes)
        got.append(refs.expected_for(space.images()[0], space))
    assert got[0] is got[1] and got[2] is not got[0]
    assert got[0].unmatched_pages == {} and list(got[2].unmatched_pages) == [0x1000]


def test_content_key_is_xxh3_of_the_read_only_parts_without_xxhash(shared_data: Path) -> None:
    """The cache key of an expected image: XXH3-128 (by the C core) of everything but writable
    data, equal to xxhash's streaming digest over the same pieces; it must not need xxhash,
    which the package does not depend on (run with the module blocked)."""
    import xxhash

    from hpforensics.kb.store_references import _content_key
    from hpforensics.reference.expected import PAGE
    from hpforensics.reference.headers import parse_headers

    for path in sorted((shared_data / "pe").glob("*.dll")):
        data = path.read_bytes()
        h, done = xxhash.xxh3_128(), 0
        for sec in sorted(parse_headers(data, str(path)).sections, key=lambda x: x.va):
            if sec.writable and not sec.executable:
                start = sec.va
                end = min(sec.va + (sec.vsize + PAGE - 1) // PAGE * PAGE, len(data))
                if start >= done:
                    h.update(data[done:start])
                    done = max(done, end)
        h.update(data[done:])
        assert _content_key(data, str(path)) == h.digest(), path.name
    child = ("import sys; sys.modules['xxhash'] = None\n"
             "from hpforensics.kb.store_references import _content_key\n"
             f"print(_content_key(open({str(path)!r}, 'rb').read(), 'x').hex())")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == _content_key(data, str(path)).hex()
