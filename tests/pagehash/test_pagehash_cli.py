"""`hpforensics hash` run as a user would, on the real PE files."""
from __future__ import annotations

import csv
import hashlib
import io
import json

import xxhash


def test_csv_rows_are_per_page_sha256(cli, real_pe_files):
    path = real_pe_files[0]
    data = path.read_bytes()
    proc = cli("hash", path, "--algo", "sha256", "--page-size", "4096", "--format", "csv",
               check=True)
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == (len(data) + 4095) // 4096
    for i, row in enumerate(rows):
        page = data[i * 4096 : (i + 1) * 4096]
        assert row["file"] == str(path)
        assert int(row["page"]) == i and int(row["offset"], 16) == i * 4096
        assert int(row["length"]) == len(page)
        assert row["digest"] == hashlib.sha256(page).hexdigest()
        assert ("zero" in row["flags"]) == (not any(page))


def test_json_to_file_several_inputs(cli, real_pe_files, tmp_path):
    files = real_pe_files[:3]
    out = tmp_path / "sub" / "pages.json"
    proc = cli("hash", *files, "--page-size", "65536", "-f", "json", "-o", out, check=True)
    assert proc.stdout == ""
    rows = json.loads(out.read_text())
    for path in files:
        data = path.read_bytes()
        mine = [r for r in rows if r["file"] == str(path)]
        assert len(mine) == (len(data) + 65535) // 65536
        assert [r["digest"] for r in mine] == [
            xxhash.xxh3_128_hexdigest(data[o : o + 65536]) for o in range(0, len(data), 65536)
        ]
        assert all(r["algo"] == "xxh128" for r in mine)


def test_zero_pages_are_flagged(cli, tmp_path):
    path = tmp_path / "z.bin"
    path.write_bytes(b"\x00" * 4096 + b"\x01" + b"\x00" * 100)
    rows = list(csv.DictReader(io.StringIO(cli("hash", path, "-f", "csv", check=True).stdout)))
    assert [r["flags"] for r in rows] == ["zero", ""]
    assert rows[1]["length"] == "101"


def test_user_errors_exit_2_with_one_line(cli, tmp_path, real_pe_files):
    cases = [
        (["hash", tmp_path / "missing.bin"], "no such file"),
        (["hash", real_pe_files[0], "--page-size", "1000"], "power of two"),
        (["hash", real_pe_files[0], "--algo", "md5"], "--algo"),
        (["hash", real_pe_files[0], "--format", "xml"], "--format"),
        (["hash", tmp_path], "not a regular file"),
    ]
    for args, text in cases:
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("hpforensics: error:") and text in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
