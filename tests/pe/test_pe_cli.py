"""`hpforensics pe info` run as a user would, on real DLLs, the samples and broken files."""
from __future__ import annotations

import json
import struct
from pathlib import Path

PE_DIR = Path(__file__).resolve().parents[2] / "samples" / "pe"


def test_info_json_on_patch_images_names_functions(cli):
    proc = cli("pe", "info", PE_DIR / "hpbase_hp2.dll", PE_DIR / "forged_hp.dll", "--format",
               "json", check=True)
    hp2, forged = json.loads(proc.stdout)
    assert hp2["kind"] == "hotpatch image" and hp2["sequence"] == 2
    (base,) = hp2["bases"]
    assert base["timestamp"] == "0x66f1a000" and base["sequence"] == 2
    names = {f["name"]: (f["base_rva"], f["patch_rva"]) for f in hp2["functions"]}
    # found beside the patch: hpbase.dll
    assert set(names) == {"HpCheckToken", "HpAdd", "HpGetCount"}
    assert all(f["base_file"].endswith("hpbase.dll") for f in hp2["functions"])
    assert hp2["patch_entries"] == {"function": 3, "absolute (inverse)": 1, "indirect (inverse)": 1,
                                    "rel32 (inverse)": 1}
    # the forged image names a checksum no file beside it has: no names, no base file
    assert [f["name"] for f in forged["functions"]] == [""]
    assert forged["functions"][0]["base_file"] == ""
    assert "hpbase.dll has this TimeDateStamp but CheckSum 0xae8f" in forged["bases"][0]["match"]
    assert hp2["bases"][0]["match"].startswith("base image")
    assert hp2["bases"][0]["match"].endswith("hpbase.dll")


def test_info_table_on_real_dlls_and_base(cli, shared_data):
    proc = cli("pe", "info", shared_data / "pe" / "vcruntime140.dll", PE_DIR / "hpbase.dll",
               check=True)
    out = proc.stdout
    assert "vcruntime140.dll" in out and "function_override=1" in out and "0x10417500" in out
    assert "hotpatch-capable base" in out and "hpbase.pdb" in out
    assert "Functions replaced" not in out  # no patch image given


def test_info_json_real_dlls(cli, real_pe_files):
    proc = cli("pe", "info", *real_pe_files, "-f", "json", check=True)
    rows = json.loads(proc.stdout)
    assert len(rows) == len(real_pe_files)
    vcr = next(r for r in rows if r["file"].endswith("vcruntime140.dll"))
    assert vcr["load_config_size"] == 320 and vcr["function_overrides"] == 1
    assert vcr["pdb_guid"] == "7426e9e0-f7c3-33f7-700a-9417d7cdd325" and vcr["checksum_ok"] is True
    assert all(r["kind"] == "image" for r in rows)


def _broken(tmp_path: Path, vcr: bytes) -> dict[str, bytes]:
    lfanew = bytearray(vcr)
    struct.pack_into("<I", lfanew, 0x3C, 0x7FFFFF00)
    return {"trunc.dll": vcr[:50000], "lfanew.dll": bytes(lfanew)}


def test_malformed_gives_one_line_and_exit_2(cli, tmp_path, shared_data):
    vcr = (shared_data / "pe" / "vcruntime140.dll").read_bytes()
    for name, data in _broken(tmp_path, vcr).items():
        path = tmp_path / name
        path.write_bytes(data)
        proc = cli("pe", "info", path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"hpforensics: error: {path} at offset 0x")
        assert "Traceback" not in proc.stderr


def test_one_bad_file_among_good_is_partial(cli, tmp_path, shared_data):
    bad = tmp_path / "bad.dll"
    bad.write_bytes(b"MZ" + bytes(100))
    proc = cli("pe", "info", PE_DIR / "hpbase.dll", bad, "-f", "json")
    assert proc.returncode == 3
    assert len(json.loads(proc.stdout)) == 1 and str(bad) in proc.stderr


def test_bad_format_option(cli):
    proc = cli("pe", "info", PE_DIR / "hpbase.dll", "-f", "xml")
    assert proc.returncode == 2 and "--format" in proc.stderr
