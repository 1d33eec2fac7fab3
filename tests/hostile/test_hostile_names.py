"""File names that are not UTF-8, and record text that cannot be UTF-8 (lone surrogates):
no traceback, and the same escaped text (`\\xNN` for an undecodable byte, `\\uXXXX` for any
other lone surrogate) in every output: CSV, JSONL, HTML, custody.json and the console."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from hpforensics.textsafe import clean, shown

BAD = b"Sys\xff\xfetem.evtx"  # 0xff 0xfe: never valid UTF-8
SHOWN = "Sys\\xff\\xfetem.evtx"  # how every output names it


def _bad_path(folder: Path, raw: bytes = BAD) -> Path:
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), raw)))


def test_clean_and_shown():
    assert shown(b"/x/" + BAD) == "/x/" + SHOWN
    assert shown(_bad_path(Path("/x"))) == "/x/" + SHOWN
    assert clean("a\ud800b\udcffc") == "a\\ud800b\\xffc"
    ok = "C:\\Windows\\système\\\\xff"  # valid text, backslashes and all, is left alone
    assert clean(ok) is ok


def _outputs(out: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(out.iterdir()) if p.is_file()}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_non_utf8_log_names_through_timeline(cli, tmp_path, shared_data, jobs):
    logs = tmp_path / "logs"
    logs.mkdir()
    good = _bad_path(logs)
    shutil.copy(shared_data / "evtx" / "system.evtx", good)
    # a damaged log too, so the name also reaches a warning on the console and in inputs.csv
    damaged = _bad_path(logs, b"bad\x80chunk.evtx")
    shutil.copy(shared_data / "evtx" / "sample_with_a_bad_chunk_magic.evtx", damaged)
    out = tmp_path / "out"
    proc = cli("timeline", logs, "-o", out, "-j", jobs, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 3, proc.stderr
    warned = [ln for ln in proc.stderr.splitlines() if ln.startswith("hpforensics: warning: ")]
    assert warned and all("bad\\x80chunk.evtx" in ln for ln in warned), proc.stderr
    assert "\udc80" not in proc.stderr and "\\udc80" not in proc.stderr
    files = _outputs(out)
    for name in ("events.csv", "events.jsonl", "timeline.csv", "timeline.jsonl", "inputs.csv",
                 "report.html", "custody.json"):
        text = files[name]
        assert "\\udc" not in text and "\ufffd" not in text, name
    with open(out / "inputs.csv", newline="", encoding="utf-8") as fh:
        inputs = {r["source"]: r for r in csv.DictReader(fh)}
    assert set(inputs) == {str(logs / SHOWN), str(logs / "bad\\x80chunk.evtx")}
    assert int(inputs[str(logs / SHOWN)]["records"]) > 1000
    assert "bad\\x80chunk.evtx" in inputs[str(logs / "bad\\x80chunk.evtx")]["warnings"]
    with open(out / "events.csv", newline="", encoding="utf-8") as fh:
        sources = {r["source"] for r in csv.DictReader(fh)}
    jsonl = {json.loads(ln)["source"] for ln in files["events.jsonl"].splitlines()}
    assert str(logs / SHOWN) in sources and sources == jsonl  # the same text in CSV and JSONL
    assert SHOWN in files["timeline.csv"] and SHOWN in files["report.html"]
    custody = {i["path"] for i in json.loads(files["custody.json"])["inputs"]}
    assert custody == {str(logs / SHOWN), str(logs / "bad\\x80chunk.evtx")}


def test_non_utf8_name_given_directly(cli, tmp_path, shared_data):
    log = _bad_path(tmp_path)
    shutil.copy(shared_data / "evtx" / "system.evtx", log)
    proc = cli("timeline", log, "-o", tmp_path / "out", "--no-html", timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert SHOWN in (tmp_path / "out" / "events.csv").read_text(encoding="utf-8")
    missing = _bad_path(tmp_path, b"gone\xff.evtx")
    proc = cli("timeline", missing, "-o", tmp_path / "out2", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr == f"hpforensics: error: {tmp_path}/gone\\xff.evtx: no such file or directory\n"
    )


def test_lone_surrogates_in_record_text(cli, tmp_path):
    """A Get-WinEvent JSON export (attacker-written) whose update title, machine name and
    message hold lone surrogates: \\ud800 is legal JSON, and Python decodes it to a str no
    UTF-8 writer accepts."""
    event = {
        "Id": 19,
        "ProviderName": "Microsoft-Windows-WindowsUpdateClient",
        "LogName": "System",
        "MachineName": "HOST\udcff1",
        "RecordId": 7,
        "TimeCreated": "/Date(1700000000000)/",
        "Message": "installed \ud800",
        "Properties": [
            {"Value": "2024-11 Cumulative Update (KB5046617) \udcff\ud83d"},
            {"Value": "{0bd4ba0a-0c1e-4d0f-a8f8-5d7ae4a7f1a1}"},
            {"Value": 1},
        ],
    }
    export = tmp_path / "export.json"
    export.write_text(json.dumps([event]), encoding="ascii")  # the \\uXXXX escapes as written
    out = tmp_path / "out"
    proc = cli("timeline", export, "-o", out, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    files = _outputs(out)
    rows = [json.loads(ln) for ln in files["events.jsonl"].splitlines()]
    assert len(rows) == 1
    assert rows[0]["device"] == "HOST\\xff1"
    assert rows[0]["title"].endswith("(KB5046617) \\xff\\ud83d") and rows[0]["kb"] == "KB5046617"
    with open(out / "events.csv", newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["device"] == rows[0]["device"] and row["title"] == rows[0]["title"]
    assert "HOST\\xff1" in files["report.html"] and "HOST\\xff1" in files["devices.csv"]
