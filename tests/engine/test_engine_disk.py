"""DiskReferences: a folder tree indexed once, modules matched by name + TimeDateStamp +
SizeOfImage (from the loader entry, or from the mapped header when the source has none)."""
from __future__ import annotations

from loader_sim import simulate, space_for

from hpforensics.engine import verify_space
from hpforensics.errors import InputError
from hpforensics.model import Verdict
from hpforensics.reference import DiskReferences, ReferenceProvider
from hpforensics.reference.disk import identity_of
from hpforensics.space import MappedImage

BASE = 0x7FF8_5550_0000


def _tree(tmp_path, shared_data):
    """Two files named vcruntime140.dll: the real one and an impostor (msvcp140 renamed)."""
    pe = shared_data / "pe"
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a" / "VCRUNTIME140.DLL").symlink_to(pe / "msvcp140.dll")
    (tmp_path / "b" / "deep" / "vcruntime140.dll").symlink_to(pe / "vcruntime140.dll")
    (tmp_path / "b" / "notes.txt").write_text("not a PE")
    return pe / "vcruntime140.dll"


def test_match_by_name_timestamp_and_size(tmp_path, shared_data):
    real = _tree(tmp_path, shared_data)
    refs = DiskReferences([tmp_path])
    assert isinstance(refs, ReferenceProvider)
    ident = identity_of(real.read_bytes()[:4096])
    im = MappedImage(BASE, ident.size_of_image, r"C:\x\vcruntime140.dll", "vcruntime140.dll",
                     timestamp=ident.timestamp)
    assert refs.find(im).endswith("b/deep/vcruntime140.dll")
    wrong = MappedImage(BASE, ident.size_of_image, "x", "vcruntime140.dll",
                        timestamp=ident.timestamp + 1)
    assert refs.find(wrong) is None
    assert refs.find(MappedImage(BASE, 0x1000, "x", "kernel32.dll", timestamp=1)) is None


def test_identity_from_the_mapped_header(tmp_path, shared_data):
    real = _tree(tmp_path, shared_data)
    img, fakes, _ = simulate(real, BASE)
    space = space_for(real, BASE, img, fakes)
    result = verify_space(space, DiskReferences([tmp_path]))
    by_name = {m.module: m for m in result.modules}
    m = by_name["vcruntime140.dll"]  # no timestamp in MappedImage: read from memory
    assert m.status == "ok" and m.reference.endswith("b/deep/vcruntime140.dll")
    assert m.pages_loader > 0 and m.pages_unexplained == 0
    assert all(by_name[n].status == "no-reference" for n in by_name if n != "vcruntime140.dll")
    assert [f for f in result.findings if f.verdict != Verdict.LOADER] == []


def test_missing_folder_is_an_input_error(tmp_path):
    try:
        DiskReferences([tmp_path / "nope"])
    except InputError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("a missing reference folder must be reported")
