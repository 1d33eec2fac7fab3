"""KB manifests: the three importers, the schema, the index the engine asks, the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hpforensics.errors import InputError
from hpforensics.kb.importers import import_source
from hpforensics.kb.importers.msfileinfo import parse
from hpforensics.kb.lookup import open_lookup
from hpforensics.kb.manifest import load, validate
from hpforensics.kb.manifest_index import ManifestIndex
from hpforensics.kb.normalize import normalize

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "kb"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HPF_DATA_DIR", str(tmp_path / "hpf-data"))


@pytest.fixture(scope="module")
def binaries(tmp_path_factory, real_pe_files) -> Path:
    d = tmp_path_factory.mktemp("update")
    for f in real_pe_files:
        shutil.copy(f, d / f.name)
    (d / "bad").mkdir()
    (d / "bad" / "corrupt.dll").write_bytes(b"MZ" + b"\xff" * 200)
    (d / "bad" / "notes.txt").write_text("hello\n")
    shutil.copytree(SAMPLES / "servicing", d / "servicing")
    return d


def test_ms_csv_sample(tmp_path) -> None:
    m = import_source(SAMPLES / "KB5052105-file-information.csv")
    assert m.kb == "KB5052105"  # from the file name
    assert (m.kind, m.release_date, m.product, m.os_build) == (
        "hotpatch", "2025-02-11", "windows11-24h2", "26100.3107")
    assert m.skipped == []
    by = {(f.name, f.architecture): f for f in m.files}
    assert by[("ntdll.dll", "amd64")].size == 2494720
    ntdll = by[("ntdll.dll", "amd64")]
    assert (ntdll.date, ntdll.time) == ("2025-02-04", "06:12")
    assert by[("ntdll.dll", "arm64")].size == 2392064
    assert sum(f.name == "ntdll.dll" for f in m.files) == 2  # the repeated x64 row is folded
    assert next(f for f in m.files if f.name.endswith(".manifest")).version is None
    out = tmp_path / "m.json"
    m.save(out)
    again = load(out)
    assert again.kb == m.kb and len(again.files) == len(m.files) and again.architecture == "multi"


def test_ms_csv_bad_rows_are_skipped_with_their_line() -> None:
    files, skipped = parse((SAMPLES / "bad-row.csv").read_text(), "bad-row.csv")
    assert [f.name for f in files] == ["ntdll.dll", "combase.dll"]
    assert [(s.item, s.error) for s in skipped] == [
        ("bad-row.csv:4", True), ("bad-row.csv:5", True), ("bad-row.csv:6", True)]
    assert "ten.zero" in skipped[0].reason and "31-Feb-2025" in skipped[2].reason


def test_ms_csv_header_variants() -> None:
    text = ("Name,Version,ModifiedTime,ModifiedTime,Size,Platform\n"
            "kernel32.dll,10.0.26100.1,01-Jan-2025,10:00,\"811,008\",x86\n")
    (f,), skipped = parse(text, "old.csv")
    assert (f.name, f.architecture, f.size, f.time) == ("kernel32.dll", "x86", 811008, "10:00")
    with pytest.raises(InputError, match="no 'File name' header"):
        parse("just,some,text\n", "x.csv")


def test_directory_import_with_page_hashes(binaries, real_pe_files) -> None:
    m = import_source(binaries, ["KB5052105"], workers=2)
    validate(m.to_json())
    names = {f.name: f for f in m.files}
    for path in real_pe_files:
        f = names[path.name]
        norm = normalize(path.read_bytes(), path.name)
        assert (f.pe.timestamp, f.pe.size_of_image, f.pe.checksum) == (
            norm.timestamp, norm.size_of_image, norm.checksum)
        assert f.pages.digests == {rva: d.hex() for rva, d in norm.pages.items()}
        assert f.hotpatch is None  # ordinary images carry no IMAGE_HOT_PATCH_INFO
        assert len(f.sha256) == 64
    assert names["vcruntime140.dll"].version.startswith("14.")
    skipped = {Path(s.item).name: s for s in m.skipped}
    assert skipped["corrupt.dll"].error and skipped["notes.txt"].error is False
    # the servicing XML beside the binaries adds the files it lists
    assert names["ntoskrnl.exe"].size == 12926312 and names["ntoskrnl.exe"].sha256


def test_servicing_xml_names_the_kb(tmp_path) -> None:
    m = import_source(SAMPLES / "servicing" / "update.mum")
    assert m.kb == "KB5052105" and m.files == []
    kernel = SAMPLES / "servicing" / "amd64_microsoft-windows-os-kernel.manifest"
    comp = import_source(kernel, ["KB5052105"])
    assert {f.name for f in comp.files} == {"ntoskrnl.exe", "hp_ntoskrnl_1.exe"}
    dcm = tmp_path / "x.manifest"
    dcm.write_bytes(b"DCM\x01" + b"\x00" * 64)
    m = import_source(dcm, ["KB5052105"])
    assert m.skipped[0].reason.startswith("compressed (DCM)") and not m.skipped[0].error


def test_index_answers_the_engine(binaries, tmp_path) -> None:
    m = import_source(binaries, ["KB5052105"], pages=False, workers=1)
    m.files[0].hotpatch = None
    out = tmp_path / "kb.json"
    m.save(out)
    later = import_source(binaries, ["KB5053636"], pages=False, workers=1)
    later.release_date = "2025-03-11"
    later.save(tmp_path / "later.json")
    index = ManifestIndex.load([tmp_path])
    f = next(f for f in m.files if f.name == "vcomp140.dll")
    ts, size = f.pe.timestamp, f.pe.size_of_image
    assert index.kb_for("C:\\Windows\\System32\\VCOMP140.DLL", ts, size) == "KB5052105"
    assert index.kbs_for("vcomp140.dll", ts, size) == ["KB5052105", "KB5053636"]
    assert index.kb_for("vcomp140.dll", f.pe.timestamp + 1, f.pe.size_of_image) is None
    assert index.kb_for_base(f.pe.timestamp, f.pe.checksum) == "KB5052105"
    assert index("vcomp140.dll") is None  # two KBs ship that name: the name alone cannot tell


def test_patch_image_lookup_through_hotpatch_bases(tmp_path) -> None:
    doc = {
        "format": "hpforensics-kb-manifest", "version": 1, "kb": "KB5077212",
        "files": [{
            "name": "hp_ntdll_1.dll",
            "pe": {"timestamp": 0x65000001, "size_of_image": 0x20000, "checksum": 0x1F00D},
            "hotpatch": {"sequence_number": 1,
                         "bases": [{"timestamp": 0x64000000, "checksum": 0x1D2C3}]},
        }],
    }
    (tmp_path / "hp.json").write_text(json.dumps(doc))
    index = ManifestIndex.load([tmp_path / "hp.json"])
    assert index.kb_for("hp_ntdll_1.dll", 0x65000001, 0x20000) == "KB5077212"
    (patch,) = index.patches_for_base(0x64000000, 0x1D2C3)
    assert patch.kb == "KB5077212" and patch.file.name == "hp_ntdll_1.dll"
    lookup = open_lookup(manifest=tmp_path / "hp.json")
    assert lookup("\\SystemRoot\\System32\\hp_ntdll_1.dll") == "KB5077212"


def test_plain_mapping_manifest_still_works() -> None:
    lookup = open_lookup(manifest=SAMPLES.parent / "memimage-kb.json")
    assert lookup("C:\\Windows\\System32\\hpbase_hp1.dll") == "KB5077212"
    assert lookup("other.dll") is None


@pytest.mark.parametrize("text", ['{"files": 7}', '{"hp.dll": {"kb": "KB5077212"}}',
                                  '{"hp.dll": "not a kb"}', '{}', 'file,kb\n'])
def test_plain_mapping_that_names_no_kb_is_refused(tmp_path, text) -> None:
    path = tmp_path / "kb.json"
    path.write_text(text)
    with pytest.raises(InputError, match="not a KB manifest"):
        open_lookup(manifest=path)


def test_schema_rejects_bad_documents(tmp_path) -> None:
    bad = {"format": "hpforensics-kb-manifest", "version": 1, "kb": "KB12", "files": []}
    with pytest.raises(InputError, match="at kb"):
        validate(bad)
    p = tmp_path / "broken.json"
    p.write_text('{"format": "hpforensics-kb-manifest", "version": 1, "kb": "KB5052105", '
                 '"files": [{"name": "a.dll", '
                 '"pe": {"timestamp": -1, "size_of_image": 1, "checksum": 1}}]}')
    with pytest.raises(InputError, match="files/0/pe/timestamp"):
        load(p)


def test_cli_import_and_show(cli, tmp_path, binaries) -> None:
    out = tmp_path / "bad.json"
    proc = cli("manifest", "import", SAMPLES / "bad-row.csv", "-o", out, "--kb", "KB5051987")
    assert proc.returncode == 3
    assert "bad-row.csv:4: bad file version" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads(out.read_text())["kind"] == "standard"
    out = tmp_path / "dir.json"
    proc = cli("manifest", "import", binaries, "-o", out, "--kb", "KB5052105", "-j", "1")
    assert proc.returncode == 3 and "corrupt.dll" in proc.stderr
    proc = cli("manifest", "show", "KB5052105", "--dir", tmp_path, "-f", "csv", check=True)
    assert "vcruntime140.dll" in proc.stdout and "0x" in proc.stdout
    proc = cli("manifest", "show", out, "-f", "json", check=True)
    assert json.loads(proc.stdout)["kb"] == "KB5052105"
    proc = cli("manifest", "import", tmp_path / "missing.csv", "-o", out)
    assert proc.returncode == 2 and proc.stderr.startswith("hpforensics: error:")


def test_hotpatch_images_name_their_bases(tmp_path) -> None:
    """The PE helper's sample patch images: the manifest records the base each one patches,
    and the index finds the patch images (and KB) for that base."""
    pe_samples = SAMPLES.parent / "pe"
    update = tmp_path / "update"
    update.mkdir()
    for f in ("hpbase.dll", "hpbase_hp1.dll", "hpbase_hp2.dll", "hpkern.sys", "hpkern_hp1.sys"):
        shutil.copy(pe_samples / f, update / f)
    m = import_source(update, ["KB5077212"], workers=1)
    assert m.skipped == []
    files = {f.name: f for f in m.files}
    base = files["hpbase.dll"]
    assert base.hotpatch is None
    for patch in ("hpbase_hp1.dll", "hpbase_hp2.dll"):
        (ref,) = files[patch].hotpatch.bases
        assert (ref.timestamp, ref.checksum) == (base.pe.timestamp, base.pe.checksum)
        assert ref.functions >= 1
    seq = {n: files[n].hotpatch.sequence_number for n in ("hpbase_hp1.dll", "hpbase_hp2.dll")}
    assert seq["hpbase_hp2.dll"] > seq["hpbase_hp1.dll"]
    m.save(tmp_path / "kb.json")
    index = ManifestIndex.load([tmp_path / "kb.json"])
    assert {s.file.name for s in index.patches_for_base(base.pe.timestamp, base.pe.checksum)} == {
        "hpbase_hp1.dll", "hpbase_hp2.dll"}
    hp1 = files["hpbase_hp1.dll"].pe
    assert index.kb_for("hpbase_hp1.dll", hp1.timestamp, hp1.size_of_image) == "KB5077212"


def test_import_is_deterministic(tmp_path, binaries) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    import_source(binaries, ["KB5052105"], workers=1).save(a)
    import_source(binaries, ["KB5052105"], workers=2).save(b)
    assert a.read_bytes() == b.read_bytes()
