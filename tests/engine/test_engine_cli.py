"""`hpforensics pe diff` end to end, in a subprocess, on the bundled samples."""
from __future__ import annotations

import csv
import json
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "pe"
PLAN = json.loads((SAMPLES / "plan.json").read_text())
BASE = "0x7ffb12340000"


def _attacked_args():
    t = PLAN["import_targets"]
    mods = [f"--module={n}@{v['base']}:{v['size']}" for n, v in t.items()]
    return ["pe", "diff", "--disk", SAMPLES / "hpbase.dll",
            "--memory", SAMPLES / "mem" / "attacked.hpbase.dll@7ffb12340000.bin", "--base", BASE,
            "--patch", f"{SAMPLES / 'hpbase_hp1.dll'}@0x7ffb12400000",
            "--patch", f"{SAMPLES / 'forged_hp.dll'}@0x7ffb12500000",
            "--region", SAMPLES / "mem" / "attacked.hpat@7ffb12346000.bin",
            "--region", SAMPLES / "mem" / "attacked.private@7ffb12600000.bin", *mods]


def test_pe_diff_json_matches_the_plan(cli):
    proc = cli(*_attacked_args(), "--format", "json", check=True)
    doc = json.loads(proc.stdout)
    (module,) = doc["modules"]
    assert module["module"] == "hpbase.dll" and module["pages_unexplained"] == 2
    got = [(f["rva"], f["size"], f["verdict"]) for f in doc["findings"]]
    scenario = next(s for s in PLAN["scenarios"] if s["name"] == "attacked")
    want = [(c["rva"], c["size"], c["verdict"]) for c in scenario["changes"]
            if c["module"] == "hpbase.dll" and c["verdict"] != "loader"]
    assert got == sorted(want, key=lambda t: int(t[0], 16))
    hook = next(f for f in doc["findings"] if f["rva"] == "0x1040")
    assert hook["target_owner"] == "private memory" and hook["disassembly"].startswith("jmp")
    iat = next(f for f in doc["findings"] if f["rva"] == "0x2018")
    assert "IAT hook: slot for kernel32.dll!Sleep points to private memory" in iat["reason"]


def test_pe_diff_csv_to_file(cli, tmp_path):
    out = tmp_path / "diff.csv"
    proc = cli(*_attacked_args(), "--format", "csv", "-o", out, "--all", check=True)
    assert proc.stdout == ""
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    verdicts = {r["verdict"] for r in rows}
    assert verdicts == {"loader", "hotpatch", "unexplained"}
    assert any(r["reason"].startswith("relocation") for r in rows if r["verdict"] == "loader")


def test_pe_diff_table_clean(cli):
    proc = cli("pe", "diff", "--disk", SAMPLES / "hpbase.dll",
               "--memory", SAMPLES / "mem" / "clean.hpbase.dll@7ffb12340000.bin", "--base", BASE,
               check=True)
    assert "hpbase.dll" in proc.stdout and "│ unexplained" not in proc.stdout
    # no --module: the IAT and CFG slots cannot be checked, so they are shown as unverified
    header = next(line for line in proc.stdout.splitlines() if "Verified" in line)
    row = next(line for line in proc.stdout.splitlines() if line.startswith("│ hpbase.dll"))
    cells = dict(zip((c.strip() for c in header.split("┃")), (c.strip() for c in row.split("│"))))
    assert (cells["Pages"], cells["Verified"], cells["Loader"], cells["Hotpatched"],
            cells["Unexplained"], cells["Unverified"]) == ("4", "2", "1", "0", "0", "1")
    assert "│ unverified" in proc.stdout and "not verified" in proc.stdout


def test_pe_diff_slots_unverified_without_module_list(cli):
    """The same clean memory with and without --module: loader only when checked."""
    args = ["pe", "diff", "--disk", SAMPLES / "hpbase.dll", "--memory",
            SAMPLES / "mem" / "clean.hpbase.dll@7ffb12340000.bin", "--base", BASE, "-f", "json"]
    bare = json.loads(cli(*args, check=True).stdout)
    (m,) = bare["modules"]
    assert {f["verdict"] for f in bare["findings"]} == {"unverified"}
    assert m["pages_unverified"] == 1 and m["pages_loader"] == 1
    assert m["pages_total"] == (m["pages_verified"] + m["pages_loader"] + m["pages_hotpatched"]
                                + m["pages_unexplained"] + m["pages_unverified"]
                                + m["pages_unavailable"])
    for f in bare["findings"]:
        assert f["extra"]["kind"] in ("iat", "cfg-pointer") and "not verified" in f["reason"]
    mods = [f"--module={n}@{v['base']}:{v['size']}" for n, v in PLAN["import_targets"].items()]
    checked = json.loads(cli(*args, *mods, check=True).stdout)
    assert checked["findings"] == [] and checked["modules"][0]["pages_unverified"] == 0


def test_pe_diff_errors_are_one_line(cli, tmp_path):
    short = tmp_path / "short.bin"
    short.write_bytes((SAMPLES / "mem" / "clean.hpbase.dll@7ffb12340000.bin").read_bytes()[:0x3000])
    proc = cli("pe", "diff", "--disk", SAMPLES / "hpbase.dll", "--memory", short, "--base", BASE)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{short} at offset 0x3000" in proc.stderr and "SizeOfImage 0x5000" in proc.stderr

    bad = tmp_path / "bad.dll"
    data = bytearray((SAMPLES / "hpbase.dll").read_bytes())
    bad.write_bytes(bytes(data[:0x300]))
    proc = cli("pe", "diff", "--disk", bad, "--memory", short, "--base", BASE)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"hpforensics: error: {bad} at offset 0x")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr

    proc = cli("pe", "diff", "--disk", SAMPLES / "hpbase.dll", "--memory", short, "--base", "zz")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
