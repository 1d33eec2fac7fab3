"""Output paths built from evidence never leave the output folder: hostile module, device and
archive-member names (`..\\..\\x`, absolute paths, control characters, Windows device names)."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from hpforensics.errors import UsageError
from hpforensics.outpaths import MAX_COMPONENT_BYTES, safe_component, safe_join

REPO = Path(__file__).resolve().parents[2]
HOSTILE = ["..", ".", "", "../../etc/passwd", "..\\..\\Windows\\x.dll", "/abs/path", "C:\\x",
           "a\x00b", "ntdll\x1b[31m.dll", "line\nbreak", "CON", "nul.txt", "lpt1", " .hidden. ",
           "\u202egpj.exe", "x" * 600, "é" * 300, "\ud800bad", "a/b\\c:d*e?f\"g<h>i|j"]


@pytest.mark.parametrize("name", HOSTILE)
def test_component_is_one_harmless_name(name):
    c = safe_component(name)
    assert c and c not in (".", "..")
    assert not set(c) & set("/\\:*?\"<>|")
    assert all(ord(ch) >= 0x20 and not 0x7F <= ord(ch) <= 0x9F for ch in c)
    assert len(c.encode("utf-8", "surrogatepass")) <= MAX_COMPONENT_BYTES
    assert c.split(".", 1)[0].lower() not in ("con", "nul", "lpt1")
    assert safe_component(name) == c  # deterministic


def test_long_names_stay_distinct():
    assert safe_component("a" * 500 + "1") != safe_component("a" * 500 + "2")


@pytest.mark.parametrize("name", HOSTILE)
def test_join_stays_inside(tmp_path, name):
    p = safe_join(tmp_path, "pid.4404", name, name)
    assert os.path.commonpath([tmp_path.resolve(), p.resolve()]) == str(tmp_path.resolve())
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    assert p.read_bytes() == b"x"


def test_join_refuses_a_planted_symlink(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dev").symlink_to(tmp_path)
    with pytest.raises(UsageError):
        safe_join(out, "dev", "x.bin")


def test_timeline_zip_with_hostile_member_names(cli, tmp_path):
    """Members named to escape (`../../`, `..\\..\\`, absolute, control characters) are read from
    the scratch folder like any other; nothing is written outside it or the output folder."""
    src = next((REPO / "samples" / "evtx" / "HP-WS-001").rglob("System.evtx")).read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "collection.zip"
    names = ["../../escaped.evtx", "..\\..\\escaped2.evtx", "/tmp/hpf-abs-escape.evtx",
             "HOST\x1b[31m/C/Windows/System32/winevt/Logs/ctl\x07.evtx", "../.."]
    with zipfile.ZipFile(archive, "w") as zf:
        for n in names[:-1]:
            zf.writestr(zipfile.ZipInfo(n), src)
    before = set(tmp_path.parent.iterdir()) | set(Path("/tmp").iterdir())
    proc = cli("timeline", archive, "-o", work / "out", "--no-html", cwd=work)
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 3), proc.stderr
    after = set(tmp_path.parent.iterdir()) | set(Path("/tmp").iterdir())
    assert not {p for p in after - before if "escape" in p.name}
    assert not list(tmp_path.rglob("*escaped*"))
    rows = (work / "out" / "inputs.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # every member read
