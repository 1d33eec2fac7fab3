"""PEImage on real Microsoft-built DLLs and pip's launchers, checked against pefile and LIEF."""
from __future__ import annotations

import lief
import pefile
import pytest

from hpforensics.pe import PEImage


@pytest.fixture(scope="module")
def vcruntime(shared_data):
    return PEImage.from_file(shared_data / "pe" / "vcruntime140.dll")


def test_vcruntime_load_config_and_function_override(vcruntime):
    lc = vcruntime.load_config
    assert lc.size == 320 and lc.is64
    assert lc.guard_flags == 0x10417500
    assert lc.dynamic_value_reloc_table_offset == 0x1AC
    assert lc.dynamic_value_reloc_table_section == 8
    table = vcruntime.dynamic_relocation_table
    assert table.version == 1 and table.symbols == [7]
    (fo,) = table.function_overrides
    assert len(fo.bdd_nodes) == 29
    assert "fothk" in [s.name for s in vcruntime.sections]
    # every function-override site is a rel32 inside an executable section
    for d in vcruntime.dynamic_relocations:
        assert d.kind == "function_override" and d.size == 4
        assert vcruntime.reader.section_of(d.rva).executable
    assert not vcruntime.hotpatch and not vcruntime.hotpatch_capable


def test_vcruntime_matches_pefile_dynamic_relocations(vcruntime, shared_data):
    pe = pefile.PE(str(shared_data / "pe" / "vcruntime140.dll"))
    (dyn,) = pe.DIRECTORY_ENTRY_LOAD_CONFIG.dynamic_relocations
    (ours,) = vcruntime.dynamic_relocation_table.function_overrides
    (theirs,) = dyn.func_relocs
    assert ours.original_rva == theirs.func_rva
    assert ours.override_rvas == theirs.override_rvas
    assert [(n[0], n[1], n[2]) for n in ours.bdd_nodes] == [
        (b.struct.Left, b.struct.Right, b.struct.Value) for b in dyn.bdd_relocs]
    want = [e.rva for blk in theirs.relocations for e in blk.entries if e.type]
    assert [d.rva for d in vcruntime.dynamic_relocations] == want


def test_vcruntime_matches_lief(vcruntime, shared_data):
    binary = lief.parse(str(shared_data / "pe" / "vcruntime140.dll"))
    lc = binary.load_configuration
    assert lc.size == vcruntime.load_config.size
    assert lc.guard_cf_function_count == len(vcruntime.guard_functions)
    assert [f.rva for f in lc.guard_cf_functions] == [g.rva for g in vcruntime.guard_functions]
    fo = lc.dynamic_relocations[0].fixups.func_overriding_info[0]
    ours_fo = vcruntime.dynamic_relocation_table.function_overrides[0]
    assert list(fo.functions_rva) == ours_fo.override_rvas
    assert len(lc.dynamic_relocations[0].fixups.bdd_info[0].relocations) == 29


def test_every_real_file_against_pefile(real_pe_files):
    for path in real_pe_files:
        ours = PEImage.from_file(path)
        pe = pefile.PE(str(path))
        assert ours.timestamp == pe.FILE_HEADER.TimeDateStamp
        assert ours.checksum == pe.OPTIONAL_HEADER.CheckSum
        assert ours.size_of_image == pe.OPTIONAL_HEADER.SizeOfImage
        exports: dict[int, str] = {}  # first name wins where several names share an RVA
        for sym in (pe.DIRECTORY_ENTRY_EXPORT.symbols
                    if hasattr(pe, "DIRECTORY_ENTRY_EXPORT") else []):
            if not sym.forwarder:
                exports.setdefault(sym.address, sym.name.decode() if sym.name
                                   else f"#{sym.ordinal}")
        assert ours.exports == exports
        iat = sorted(i.address - pe.OPTIONAL_HEADER.ImageBase for e in pe.DIRECTORY_ENTRY_IMPORT
                     for i in e.imports)
        assert sorted(s.rva for s in ours.imports if not s.delay) == iat
        relocs = [(e.rva, e.type) for b in pe.DIRECTORY_ENTRY_BASERELOC for e in b.entries]
        assert ours.base_relocations == relocs
        cv = next(d.entry for d in pe.DIRECTORY_ENTRY_DEBUG if d.struct.Type == 2)
        assert ours.codeview.pdb_name == cv.PdbFileName.rstrip(b"\0").decode()
        assert ours.codeview.age == cv.Age
        if hasattr(pe, "DIRECTORY_ENTRY_LOAD_CONFIG"):
            s = pe.DIRECTORY_ENTRY_LOAD_CONFIG.struct
            for name in ("Size", "GuardFlags", "SecurityCookie", "GuardCFFunctionCount",
                         "DynamicValueRelocTableOffset", "HotPatchTableOffset"):
                assert ours.load_config.get(name) == getattr(s, name), (path, name)
        # the IAT ranges are inside the image and 8-byte slots
        assert all(s.size == 8 for s in ours.imports)


def test_mapped_layout_parses_like_the_file(real_pe_files):
    """mapped=True (offsets are RVAs) gives the same metadata as the file layout."""
    for path in real_pe_files:
        pe = pefile.PE(str(path))
        mapped = PEImage.from_bytes(pe.get_memory_mapped_image(), path.name, mapped=True)
        disk = PEImage.from_file(path)
        assert mapped.exports == disk.exports
        assert mapped.imports == disk.imports
        assert mapped.base_relocations == disk.base_relocations
        assert mapped.dynamic_relocations == disk.dynamic_relocations
        assert mapped.guard_functions == disk.guard_functions
        assert mapped.codeview == disk.codeview
        assert mapped.loader_ranges() == disk.loader_ranges()


def test_loader_ranges_cover_relocations_iat_cfg_cookie(vcruntime):
    kinds = {r.kind for r in vcruntime.loader_ranges()}
    assert {"reloc", "iat", "cfg_pointer", "security_cookie", "function_override",
            "header_image_base"} <= kinds
    slots = dict(vcruntime.cfg_pointer_slots())
    assert set(slots) >= {"GuardCFCheckFunctionPointer", "GuardCFDispatchFunctionPointer"}
    assert vcruntime.iat_ranges and all(lo < hi for lo, hi in vcruntime.iat_ranges)


def test_codeview_symbol_key(vcruntime):
    cv = vcruntime.codeview
    assert cv.pdb_name.endswith("vcruntime140.amd64.pdb")
    assert cv.symbol_key == "7426E9E0F7C333F7700A9417D7CDD3251"


def _distlib_launchers(names):
    import pip._vendor.distlib as distlib
    from pathlib import Path

    folder = Path(distlib.__file__).parent
    found = [folder / n for n in names if (folder / n).exists()]
    assert found, f"no distlib launchers {names} in {folder}"
    return found


def test_32_bit_and_arm64_launchers_against_pefile_and_lief():
    """pip's 32-bit (load config Size 0x48) and ARM64 (Size 312) launchers."""
    for path in _distlib_launchers(["t32.exe", "w32.exe", "t64-arm.exe", "w64-arm.exe"]):
        ours = PEImage.from_file(path)
        pe = pefile.PE(str(path))
        lb = lief.parse(str(path))
        assert ours.is64 == (pe.PE_TYPE == pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS)
        assert ours.machine_name == ("I386" if "32" in path.name else "ARM64")
        s = pe.DIRECTORY_ENTRY_LOAD_CONFIG.struct
        assert ours.load_config.size == s.Size == lb.load_configuration.size
        assert ours.load_config.get("SecurityCookie") == s.SecurityCookie
        assert ours.pointer_size == (4 if "32" in path.name else 8)
        assert ours.base_relocations == [(e.rva, e.type) for b in pe.DIRECTORY_ENTRY_BASERELOC
                                         for e in b.entries]
        assert {s.rva for s in ours.imports} == {
            i.address - pe.OPTIONAL_HEADER.ImageBase for e in pe.DIRECTORY_ENTRY_IMPORT
            for i in e.imports}
        assert all(s.size == ours.pointer_size for s in ours.imports)
        mapped = PEImage.from_bytes(pe.get_memory_mapped_image(), path.name, mapped=True)
        assert mapped.loader_ranges() == ours.loader_ranges()
        relocs = {r.rva: r.size for r in ours.loader_ranges() if r.kind == "reloc"}
        assert set(relocs.values()) == {4 if "32" in path.name else 8}
