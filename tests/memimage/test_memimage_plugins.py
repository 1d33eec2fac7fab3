"""windows.hotpatch.* through the `vol` CLI, compared with what the generator planted."""
from __future__ import annotations

import csv
import io

from memimage_helpers import leaf, run_vol, vol_json


def test_images_plugin_matches_the_plan(expected_images):
    rows = vol_json("windows.hotpatch.Images")
    got = {(r["PID"], leaf(r["Base module"]), leaf(r["Patch image"]), r["Status"], r["Flagged"],
            r["Patched functions"], r["Functions"]) for r in rows}
    assert got == expected_images
    by_pid = {r["PID"]: r for r in rows if leaf(r["Patch image"]) == "hpbase_hp1.dll"}
    assert by_pid[1024]["Loader state"] == "AppliedForward" and by_pid[1024]["PEB hotpatched"]
    assert by_pid[6120]["Loader state"] == "BaseImage" and by_pid[6120]["PEB hotpatched"] is False


def test_regions_plugin_gives_every_planted_verdict(expected_findings):
    rows = vol_json("windows.hotpatch.Regions", "--reference", "samples/pe")
    got = {(r["PID"], r["Module"], r["RVA"], r["Size"], r["Verdict"]) for r in rows}
    assert got == expected_findings
    forged = [r for r in rows if r["PID"] == 3128 and r["RVA"] == 0x107B]
    assert forged[0]["Verdict"] == "unexplained"
    assert leaf(forged[0]["Patch image"]) == "forged_hp.dll"
    hook = next(r for r in rows if r["PID"] == 3128 and r["RVA"] == 0x1040)  # the inline hook
    assert hook["Code now"].startswith("jmp ") and hook["Original code"]
    assert hook["Original code"] != hook["Code now"]


def test_verify_plugin_csv_accounts_pages_with_references():
    proc = run_vol("windows.hotpatch.Verify", "--reference", "samples/pe", renderer="csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    hp = {(r["PID"], r["Module"]): r for r in rows}
    explorer = hp[("2260", "hpbase.dll")]
    assert explorer["Reference"].endswith("hpbase.dll") and explorer["Unavailable"] == "1"
    assert hp[("3128", "hpbase.dll")]["Unexplained"] != "0"
    assert hp[("604", "hpbase.dll")]["Unexplained"] == "0"
    assert hp[("604", "ntdll.dll")]["Status"] == "no-reference"
    # 24H2 extension pages: SCP CFG page + HPAT, verified with or without an image reference
    clean, code, slot = (hp[("604", "hpbase.dll")], hp[("7208", "hpbase.dll")],
                         hp[("7316", "hpbase.dll")])
    assert clean["Extension pages"] == "3" and clean["Extension unexplained"] == "0"
    assert clean["Extension"].startswith("SCPCFGES page")
    assert code["Extension unexplained"] == "1" and slot["Extension unexplained"] == "1"
    assert (slot["HPAT stubs used"], hp[("1024", "hpbase.dll")]["HPAT stubs used"]) == ("2", "2")
    ntdll = hp[("604", "ntdll.dll")]
    assert ntdll["Extension pages"] == "1" and ntdll["Extension"] == "SCPCFGES page"


def test_pid_filter_limits_the_spaces():
    rows = vol_json("windows.hotpatch.Images", "--pid", "1024")
    assert {r["PID"] for r in rows} == {1024}


def test_manifest_names_the_kb_and_dump_writes_bytes(tmp_path):
    rows = vol_json("windows.hotpatch.Images", "--pid", "1100", "--manifest",
                    "samples/memimage-kb.json")
    assert {leaf(r["Patch image"]): r["KB"] for r in rows} == {
        "hpbase_hp1.dll": "KB5077212", "hpbase_hp2.dll": "KB5079420"}
    out = tmp_path / "dump"
    out.mkdir()
    proc = run_vol("-o", str(out), "windows.hotpatch.Regions", "--reference", "samples/pe",
                   "--pid", "3128", "--dump")
    assert proc.returncode == 0, proc.stderr
    hook = out / "pid.3128.hpbase.dll.0x7ffb12341040.actual.bin"
    assert hook.read_bytes()[:1] == b"\xe9"  # the attacker's jmp, 5 bytes
    expected = out / "pid.3128.hpbase.dll.0x7ffb12341040.expected.bin"
    assert expected.read_bytes() != hook.read_bytes()


def test_bad_option_is_one_error_line_not_a_traceback(tmp_path):
    proc = run_vol("windows.hotpatch.Verify", "--reference", str(tmp_path / "missing"))
    assert "Traceback" not in proc.stderr
    missing = tmp_path / "missing"
    assert f"hpforensics: error: {missing}: reference folder does not exist" in proc.stderr
    assert proc.stdout.strip() == "[]"
