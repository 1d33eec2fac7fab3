"""Delay-load IAT slots: an image written with samples/pe_writer.py, read by us and by LIEF."""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import lief

from hpforensics.pe import PEImage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "samples"))
from pe_writer import SCN_CODE, SCN_DATA, SCN_RDATA, SCN_RELOC, Image  # noqa: E402


def _image_with_delay_imports() -> tuple[bytes, int, int]:
    img = Image(0x180000000, 0x66000000)
    for name, flags in ((".text", SCN_CODE), (".rdata", SCN_RDATA), (".data", SCN_DATA),
                        (".reloc", SCN_RELOC)):
        img.section(name, flags)
    img.emit(".text", b"\xCC" * 16)
    img.emit(".text", b"\x48\x8D\x05\x00\x00\x00\x00\xC3", label="__delayLoadHelper_thunk")
    img.emit(".text", b"\xC3", label="entry")
    img.entry_label = "entry"
    names = ["ShellExecuteW", "SHGetFolderPathW"]
    # the loader (helper) rewrites these slots
    img.emit(".data", b"", label="delay_iat", align_to=8)
    for _ in names:
        img.ref(".data", "va64", "__delayLoadHelper_thunk")
    img.emit(".data", bytes(8))
    img.emit(".data", bytes(8), label="hmod")
    img.emit(".rdata", b"", label="delay_int", align_to=8)
    for i, _ in enumerate(names):
        img.ref(".rdata", "rva32", f"dn{i}")
        img.emit(".rdata", bytes(4))
    img.emit(".rdata", bytes(8))
    for i, n in enumerate(names):
        img.emit(".rdata", struct.pack("<H", 0) + n.encode() + b"\0", label=f"dn{i}", align_to=2)
    img.emit(".rdata", b"shell32.dll\0", label="delay_dll")
    # Attributes: RVA based
    img.emit(".rdata", struct.pack("<I", 1), label="delay_desc", align_to=4)
    for lab in ("delay_dll", "hmod", "delay_iat", "delay_int"):
        img.ref(".rdata", "rva32", lab)
    img.emit(".rdata", bytes(12 + 32))  # bound IAT, unload IAT, timestamp; then the null descriptor
    img.directory(13, "delay_desc", 64)
    img.resolve()
    img.sections[".reloc"].data += img.reloc_blocks()
    img.labels["reloc0"] = img.sections[".reloc"].rva
    img.directory(5, "reloc0", len(img.sections[".reloc"].data))
    return img.write(), img.labels["delay_iat"], img.labels["__delayLoadHelper_thunk"]


def test_delay_iat_slots(tmp_path):
    data, iat, thunk = _image_with_delay_imports()
    path = tmp_path / "delay.dll"
    path.write_bytes(data)
    ours = PEImage.from_file(path)
    delay = [s for s in ours.imports if s.delay]
    assert [(s.dll, s.name, s.rva) for s in delay] == [
        ("shell32.dll", "ShellExecuteW", iat), ("shell32.dll", "SHGetFolderPathW", iat + 8)]
    assert ("delay_iat" in {r.kind for r in ours.loader_ranges()})
    assert ours.iat_ranges == [(iat, iat + 16)]
    binary = lief.parse(str(path))
    assert [e.name for d in binary.delay_imports for e in d.entries] == [s.name for s in delay]
    (desc,) = binary.delay_imports
    assert desc.name == "shell32.dll" and desc.iat == iat  # LIEF finds the same IAT
    # before binding, each slot holds the absolute address of the lazy-binding thunk
    assert {e.iat_value for e in desc.entries} == {0x180000000 + thunk}
