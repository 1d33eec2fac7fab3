"""Every report records the chain of custody: tool and version, the options that shaped it, and
the SHA-256, size and mtime of each input (checked against the files themselves)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from hpforensics import __version__
from hpforensics.custody import custody_block, input_records, sidecar_path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"


def _check(block: dict, command: str, inputs: list[Path]) -> None:
    assert block["tool"]["name"] == "hpforensics" and block["tool"]["version"] == __version__
    assert block["command"] == command
    assert isinstance(block["options"], dict)
    by_path = {Path(r["path"]).resolve(): r for r in block["inputs"]}
    for p in inputs:
        rec = by_path[p.resolve()]
        assert rec["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        assert rec["size"] == p.stat().st_size
        stamp = dt.datetime.fromisoformat(rec["mtime"].replace("Z", "+00:00"))
        assert abs(stamp.timestamp() - p.stat().st_mtime) < 1e-3


def test_block_expands_folders_and_skips_repeats(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"x")
    (tmp_path / "y.bin").write_bytes(b"yy")
    recs = input_records([tmp_path / "a", tmp_path / "y.bin", tmp_path / "y.bin", None])
    assert [Path(r.path).name for r in recs] == ["x.bin", "y.bin"]
    block = custody_block("t", [tmp_path / "y.bin"], {"threads": None, "set": {"b", "a"}},
                          references=[tmp_path / "a"])
    assert block["options"] == {"set": ["a", "b"], "threads": None}
    assert block["references"] == [str(tmp_path / "a")]


def test_hash_sidecar(cli, tmp_path):
    f = SAMPLES / "pe" / "hpbase.dll"
    out = tmp_path / "h.csv"
    cli("hash", "-q", "-f", "csv", "-a", "sha256", "-o", out, f, check=True)
    block = json.loads(sidecar_path(out).read_text())
    _check(block, "hash", [f])
    assert block["options"]["algo"] == "sha256"


def test_pe_diff_json_and_csv(cli, tmp_path):
    disk = SAMPLES / "pe" / "hpbase.dll"
    mem = SAMPLES / "pe" / "mem" / "hp1.hpbase.dll@7ffb12340000.bin"
    patch = SAMPLES / "pe" / "hpbase_hp1.dll"
    args = ("pe", "diff", "--disk", disk, "--memory", mem, "--base", "0x7ffb12340000",
            "--patch", f"{patch}@0x7ffb12400000")
    doc = json.loads(cli(*args, "-f", "json", check=True).stdout)
    _check(doc["custody"], "pe diff", [disk, mem, patch])
    cli(*args, "-f", "csv", "-o", tmp_path / "d.csv", check=True)
    _check(json.loads(sidecar_path(tmp_path / "d.csv").read_text()), "pe diff", [disk, mem, patch])


def test_timeline_custody_json(cli, tmp_path):
    logs = SAMPLES / "evtx" / "HP-WS-003"
    proc = cli("timeline", logs, "-o", tmp_path / "tl", "--no-html", "--from", "2025-01-01")
    assert proc.returncode in (0, 3), proc.stderr
    block = json.loads((tmp_path / "tl" / "custody.json").read_text())
    _check(block, "timeline", sorted(logs.rglob("*.evtx")))
    assert block["options"]["from"] == "2025-01-01" and "jobs" not in block["options"]


def test_manifest_import_and_store_build(cli, tmp_path):
    csv_in = SAMPLES / "kb" / "KB5052105-file-information.csv"
    cli("manifest", "import", csv_in, "-o", tmp_path / "m.json", check=True)
    _check(json.loads(sidecar_path(tmp_path / "m.json").read_text()), "manifest import", [csv_in])
    bins = tmp_path / "bins"
    bins.mkdir()
    for n in ("hpbase.dll", "hpbase_hp1.dll"):
        shutil.copy2(SAMPLES / "pe" / n, bins / n)
    proc = cli("store", "build", bins, "--db", tmp_path / "s.db", "--kb", "KB5052105", "-j", "1")
    assert proc.returncode == 0, proc.stderr
    block = json.loads(sidecar_path(tmp_path / "s.db").read_text())
    _check(block, "store build", sorted(bins.iterdir()))
    assert block["options"] == {"kb": ["KB5052105"]}


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_yara_sidecar(cli, tmp_path, fmt):
    rules = tmp_path / "r.yar"
    rules.write_text('rule mz { strings: $a = "MZ" condition: $a at 0 }\n')
    target = SAMPLES / "pe" / "hpkern.sys"
    cli("yara", rules, target, "-f", fmt, "-o", tmp_path / f"y.{fmt}", check=True)
    _check(json.loads(sidecar_path(tmp_path / f"y.{fmt}").read_text()), "yara", [rules, target])


def test_dump_analyze_report_json(cli, tmp_path):
    image, kb = SAMPLES / "win11-24h2-hotpatch.raw", SAMPLES / "memimage-kb.json"
    cli("dump", "analyze", image, "-s", SAMPLES / "symbols", "--reference", SAMPLES / "pe",
        "--manifest", kb, "--pid", "4404", "-o", tmp_path / "d", "-q", check=True, timeout=300)
    block = json.loads((tmp_path / "d" / "report.json").read_text())["custody"]
    _check(block, "dump analyze", [image, kb])
    assert block["options"] == {"pid": [4404]}
    assert [Path(r).name for r in block["references"]] == ["symbols", "pe"]


def test_hashes_taken_on_the_commands_read_are_reused(tmp_path):
    """A hash the command took on its own read of a file is recorded as is (the file is not
    read a second time); files without one are hashed."""
    from hpforensics.custody import input_records

    a, b = tmp_path / "a.evtx", tmp_path / "b.evtx"
    a.write_bytes(b"a" * 100)
    b.write_bytes(b"b" * 100)
    recs = {Path(r.path).name: r for r in input_records([tmp_path], {str(a): "f" * 64})}
    assert recs["a.evtx"].sha256 == "f" * 64 and recs["a.evtx"].size == 100
    assert recs["b.evtx"].sha256 == hashlib.sha256(b"b" * 100).hexdigest()


def test_pe_info_output_and_sidecar(cli, tmp_path, shared_data):
    """`pe info -f json -o F`: the same JSON as on stdout, and its custody sidecar."""
    files = [shared_data / "pe" / "vcruntime140.dll", SAMPLES / "pe" / "hpbase_hp1.dll"]
    out = tmp_path / "info.json"
    cli("pe", "info", *files, "-f", "json", "-o", out, check=True)
    shown = cli("pe", "info", *files, "-f", "json", check=True)
    assert json.loads(out.read_text()) == json.loads(shown.stdout)
    _check(json.loads(sidecar_path(out).read_text()), "pe info", files)
    refused = cli("pe", "info", *files, "-o", out)
    assert refused.returncode == 2 and "--format json" in refused.stderr


def test_background_hash_equals_the_serial_one_and_keeps_its_error(tmp_path):
    """dump analyze hashes the image on a thread while it analyses: same digest, and a file
    that cannot be read gives the caller the same error the serial hash would."""
    from hpforensics.errors import InputError
    from hpforensics.evidence import BackgroundHash, describe_input

    f = tmp_path / "image.raw"
    f.write_bytes(bytes(range(256)) * 20000)
    assert BackgroundHash(f).result() == describe_input(f).sha256
    with pytest.raises(InputError) as serial:
        describe_input(tmp_path / "gone.raw")
    with pytest.raises(InputError) as threaded:
        BackgroundHash(tmp_path / "gone.raw").result()
    assert str(threaded.value) == str(serial.value)
