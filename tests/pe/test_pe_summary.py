"""Base lookup for `pe info`: by TimeDateStamp + CheckSum in the patch's folder, garbage ignored."""
from __future__ import annotations

import shutil
from pathlib import Path

from hpforensics.pe import PEImage
from hpforensics.pe.summary import BaseFinder, describe, name_functions

PE_DIR = Path(__file__).resolve().parents[2] / "samples" / "pe"


def test_base_found_beside_the_patch_and_garbage_ignored(tmp_path):
    shutil.copy(PE_DIR / "hpbase_hp1.dll", tmp_path)
    shutil.copy(PE_DIR / "hpbase.dll", tmp_path / "renamed_base.dll")  # the name does not matter
    (tmp_path / "junk.dll").write_bytes(b"MZ" + bytes(10))
    (tmp_path / "notes.txt").write_text("not a PE")
    patch = PEImage.from_file(tmp_path / "hpbase_hp1.dll")
    info = describe(patch)
    name_functions(info, patch, BaseFinder([patch]))
    assert [(f.name, f.base_rva) for f in info.functions] == [("HpCheckToken", 0x1010),
                                                              ("HpAdd", 0x1030)]
    assert info.bases[0]["match"] == f"base image {tmp_path / 'renamed_base.dll'}"
    assert info.sequence == 1 and info.kind == "hotpatch image"
    assert info.patch_entries == {"function": 2, "absolute (inverse)": 1, "indirect (inverse)": 1,
                                  "rel32 (inverse)": 1}


def test_no_base_anywhere(tmp_path):
    shutil.copy(PE_DIR / "hpkern_hp1.sys", tmp_path)
    patch = PEImage.from_file(tmp_path / "hpkern_hp1.sys")
    info = describe(patch)
    name_functions(info, patch, BaseFinder([patch]))
    assert all(f.name == "" and f.base_file == "" for f in info.functions)
    assert len(info.functions) == 2
    assert info.bases[0]["match"].startswith("no base found")
