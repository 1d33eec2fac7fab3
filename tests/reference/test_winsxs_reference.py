"""Patch images as Windows names and keeps them: `<module>_hotpatch.dll` under WinSxS component
folders, beside the f\\ and r\\ servicing deltas that carry the same file names. `--reference`
and `store build` take such a tree; the Images records say how a patch image was recognised and
flag an image that only borrows the name."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "engine"))
sys.path.insert(0, str(TESTS / "memimage"))

from memimage_helpers import IMAGE, SYMBOLS  # noqa: E402
from test_engine_samples import PLAN, build  # noqa: E402

from hpforensics.memimage.patchstate import NAMED_NO_RECORDS, hotpatch_images  # noqa: E402
from hpforensics.sources.files import FilesSpace  # noqa: E402
from hpforensics.space import MappedImage  # noqa: E402

REPO = TESTS.parent
SAMPLES = REPO / "samples" / "pe"
COMPONENT = "amd64_microsoft-windows-hpbase_31bf3856ad364e35_10.0.26100.{}_none_{:016x}"


def winsxs_tree(root: Path, shared_data: Path) -> Path:
    """A WinSxS copy: the sample base and patch images in component folders of their own, an
    older 'version' of hpbase.dll (another file under that name) in a second component, and
    PA30 deltas named hpbase.dll in f\\ and r\\ — none of which may be taken for the image."""
    sxs = root / "Windows" / "WinSxS"
    new = sxs / COMPONENT.format(4061, 0x1A2B)
    old = sxs / COMPONENT.format(2033, 0x3C4D)
    for folder in (new / "f", new / "r", old):
        folder.mkdir(parents=True)
    for f in [*SAMPLES.glob("*.dll"), *SAMPLES.glob("*.sys")]:
        shutil.copy(f, new / f.name)
    shutil.copy(shared_data / "pe" / "vcruntime140.dll", old / "hpbase.dll")
    for sub in ("f", "r"):
        (new / sub / "hpbase.dll").write_bytes(b"PA30" + bytes(60))
    (sxs / "Manifests").mkdir()
    (sxs / "Manifests" / (new.name + ".manifest")).write_bytes(b"DCM\x01" + bytes(32))
    return root


def _analyze(cli, out: Path, *args) -> dict:
    proc = cli("dump", "analyze", IMAGE, "--symbols", SYMBOLS, "-o", out, "-q", *args)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return json.loads((out / "report.json").read_text())


def test_dump_analyze_with_a_winsxs_tree_equals_the_flat_folder(cli, tmp_path, shared_data):
    tree = winsxs_tree(tmp_path / "sxs", shared_data)
    flat = _analyze(cli, tmp_path / "flat", "--reference", SAMPLES)
    sxs = _analyze(cli, tmp_path / "tree", "--reference", tree)
    key = lambda f: (f["pid"] or -1, f["module"], f["rva"], f["size"], f["verdict"])  # noqa: E731
    assert sorted(map(key, sxs["findings"])) == sorted(map(key, flat["findings"]))
    refs = {m["reference"] for m in sxs["modules"] if m["module"] == "hpbase.dll"}
    assert refs == {f"disk:{tree}/Windows/WinSxS/{COMPONENT.format(4061, 0x1A2B)}/hpbase.dll"}


def test_store_build_on_a_winsxs_tree_skips_the_deltas(cli, tmp_path, shared_data):
    tree = winsxs_tree(tmp_path / "sxs", shared_data)
    db = tmp_path / "sxs.db"
    proc = cli("store", "build", tree, "--db", db, "--kb", "KB5072014", "-j", "1")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    look = cli("store", "lookup", "--db", db, SAMPLES / "hpbase.dll", check=True)
    assert "KB5072014" in look.stdout


def _hp1_space(rename: dict[str, str], extra=()):
    """The hp1 sample space, patch images named and placed as given."""
    space, images, _ = build(next(s for s in PLAN["scenarios"] if s["name"] == "hp1"))
    regions, raw = [], []
    for im, data in space._regions:
        if im.base not in space._image_bases:  # the HPAT: raw memory, not an image
            raw.append((im.base, data))
            continue
        if im.name in rename:
            path = rename[im.name]
            im = MappedImage(im.base, im.size, path, path.rsplit("\\", 1)[-1],
                             is_patch_image=False, timestamp=im.timestamp, checksum=im.checksum)
        regions.append((im, data))
    return FilesSpace([*regions, *extra], raw, source="file:hp1")


def test_patch_image_recognised_by_records_and_windows_name(shared_data):
    sxs = "C:\\Windows\\WinSxS\\" + COMPONENT.format(4061, 0x1A2B)
    space = _hp1_space({"hpbase_hp1.dll": sxs + "\\hpbase_hotpatch.dll"})
    (row,) = [r for r in hotpatch_images(space) if r.patch_path.endswith("hpbase_hotpatch.dll")]
    assert row.functions_patched == row.functions_total == 2
    assert row.recognised_by == "hot patch records, name" and row.note == ""


def test_patch_image_out_of_place_and_borrowed_names_are_noted(shared_data):
    space = _hp1_space({"hpbase_hp1.dll": "C:\\Users\\Public\\kernel32_hotpatch.dll"})
    (row,) = [r for r in hotpatch_images(space) if r.patch_path.endswith("kernel32_hotpatch.dll")]
    assert "named for kernel32.dll but patches hpbase.dll" in row.note
    assert "not loaded from C:\\Windows\\WinSxS" in row.note
    # an ordinary DLL under a patch image's name: no records, so no patch, and flagged
    raw = (shared_data / "pe" / "vcruntime140.dll").read_bytes()
    import pefile

    laid = pefile.PE(data=raw).get_memory_mapped_image(ImageBase=0x7FF9_0000_0000)
    fake = MappedImage(0x7FF9_0000_0000, len(laid), "C:\\Windows\\System32\\ntdll_hotpatch.dll",
                       "ntdll_hotpatch.dll")
    space = _hp1_space({}, extra=[(fake, laid)])
    (row,) = [r for r in hotpatch_images(space) if r.patch_path.endswith("ntdll_hotpatch.dll")]
    assert row.status == NAMED_NO_RECORDS and row.flagged and row.base_module == "ntdll.dll"
    assert row.recognised_by == "name"


@pytest.fixture(scope="module")
def cli():
    def run(*args, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "hpforensics", *map(str, args)],
                              capture_output=True, text=True, cwd=REPO)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc
    return run
