"""Archives that expand beyond reason: a zip member of 1 GiB of zeros (a few MB packed) is
refused with one warning naming it, before anything is written; the archive's other members
are read. The CLI runs with a 256 MiB file-size limit (RLIMIT_FSIZE): a copy of the member
would be killed by SIGXFSZ instead of passing unnoticed."""
from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

from hpforensics.evtx.ingest import FREE_RESERVE, MAX_RATIO, member_refusal

LOGS = "HOST9/C/Windows/System32/winevt/Logs/"
GIB = 1 << 30
FSIZE_LIMIT = 256 << 20


def _bomb_zip(path: Path, real_log: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.write(real_log, LOGS + "System.evtx")
        with zf.open(LOGS + "Security.evtx", "w", force_zip64=True) as member:
            zeros = bytes(1 << 20)
            for _ in range(GIB >> 20):
                member.write(zeros)


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


def test_one_gib_of_zeros_is_refused_and_the_rest_read(tmp_path, shared_data):
    archive = tmp_path / "Collection-HOST9.zip"
    _bomb_zip(archive, shared_data / "evtx" / "system.evtx")
    assert archive.stat().st_size < 8 << 20
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out"
    env = dict(os.environ, TMPDIR=str(scratch))
    proc = subprocess.run([sys.executable, "-m", "hpforensics", "timeline", str(archive),
                           "-o", str(out), "--no-html"], capture_output=True, text=True,
                          env=env, preexec_fn=_limited, timeout=300)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)  # a copy ends in EFBIG at 256 MiB
    assert "Traceback" not in proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("hpforensics: warning:")]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith(f"hpforensics: warning: {archive}!{LOGS}Security.evtx at "
                                  "offset 0x")
    assert f"expands to {GIB:,} bytes from" in warnings[0] and "not extracted" in warnings[0]
    with open(out / "inputs.csv", newline="", encoding="utf-8") as fh:
        rows = {r["source"].rpartition("/")[2]: r for r in csv.DictReader(fh)}
    assert int(rows["System.evtx"]["records"]) > 1000 and not rows["System.evtx"]["warnings"]
    assert rows["Security.evtx"]["records"] == "0"
    assert list(scratch.iterdir()) == []  # nothing left behind in the scratch folder either


def test_member_refusal_rules(tmp_path, shared_data):
    info = zipfile.ZipInfo("System.evtx")
    info.file_size, info.compress_size = 1 << 20, 1 << 10  # 1024:1 but small: harmless
    assert member_refusal(info, str(tmp_path), free=GIB) == ""
    info.file_size, info.compress_size = 100 << 20, 1 << 20  # exactly 100:1: allowed
    assert MAX_RATIO == 100 and member_refusal(info, str(tmp_path), free=GIB) == ""
    info.compress_size -= 1
    assert "more than 100:1" in member_refusal(info, str(tmp_path), free=GIB)
    info.file_size, info.compress_size = 200 << 20, 100 << 20  # fine ratio, no room
    why = member_refusal(info, str(tmp_path), free=FREE_RESERVE + (100 << 20))
    assert "more than the scratch folder can hold" in why
    # the real logs, packed as a collector packs them, are far from the bound
    archive = tmp_path / "real.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for log in sorted((shared_data / "evtx").glob("*.evtx")):
            zf.write(log, log.name)
    with zipfile.ZipFile(archive) as zf:
        for i in zf.infolist():
            assert i.file_size < 60 * i.compress_size
            assert member_refusal(i, str(tmp_path)) == ""


def test_corrupt_deflate_member_found_by_the_fuzzer(cli, tmp_path):
    """fuzz_archive's first find: a member whose deflate stream is corrupt raised zlib.error
    out of the copy (a traceback from timeline). Now one warning naming the member; the
    other members are read."""
    archive = Path(__file__).resolve().parents[1] / "corrupt" / "regressions" / \
        "archive-corrupt-deflate.zip"
    proc = cli("timeline", archive, "-o", tmp_path / "out", "--no-html", timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 3, proc.stderr
    assert (f"hpforensics: warning: {archive}!uploads/auto/C%3A/Windows/System32/winevt/Logs/"
            "Setup.evtx: cannot extract from the archive (Error -3 while decompressing data"
            in proc.stderr)
    with open(tmp_path / "out" / "inputs.csv", newline="", encoding="utf-8") as fh:
        rows = {r["source"].rpartition("!")[2]: r for r in csv.DictReader(fh)}
    assert rows["/abs/C/Windows/System32/winevt/Logs/x.json"]["records"] == "1"


def test_unknown_zip_version_found_by_the_fuzzer(cli, tmp_path):
    """fuzz_archive's second find: a central directory naming a zip version zipfile does not
    know raised NotImplementedError out of discover (a traceback). Now one error line."""
    archive = Path(__file__).resolve().parents[1] / "corrupt" / "regressions" / \
        "archive-unknown-version.zip"
    proc = cli("timeline", archive, "-o", tmp_path / "out", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (f"hpforensics: error: {archive}: not a readable zip archive "
                           "(zip file version 23.6)\n")


def test_local_header_name_not_utf8_found_by_the_fuzzer(cli, tmp_path):
    """fuzz_archive's third find: a member whose local header name is flagged UTF-8 and is
    not raised UnicodeDecodeError out of zipfile's open (a traceback). Now that member is one
    warning like any damaged member; here no member holds a record, so one error line."""
    archive = Path(__file__).resolve().parents[1] / "corrupt" / "regressions" / \
        "archive-local-name-not-utf8.zip"
    proc = cli("timeline", archive, "-o", tmp_path / "out", timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"hpforensics: error: {archive}!")


def test_a_hive_log_member_beyond_the_bound_is_named_and_the_hive_read(cli, tmp_path):
    """A hive's transaction log is copied beside it only within the same bound: a 96 MiB
    .LOG1 of zeros is one warning naming it, and the hive is read without it."""
    config = Path(__file__).resolve().parents[2] / "samples" / "kape" / "HP-WS-001" / "C" / \
        "Windows" / "System32" / "config"
    archive = tmp_path / "HOST7.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.write(config / "SYSTEM", "C/Windows/System32/config/SYSTEM")
        with zf.open("C/Windows/System32/config/SYSTEM.LOG1", "w") as member:
            for _ in range(96):
                member.write(bytes(1 << 20))
    out = tmp_path / "out"
    cli("timeline", config / "SYSTEM", "-o", tmp_path / "alone", "--no-html", timeout=120)
    proc = cli("timeline", archive, "-o", out, "--no-html", timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 3, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("hpforensics: warning:")]
    assert any(f"{archive}!C/Windows/System32/config/SYSTEM.LOG1 at offset 0x" in ln
               and "not extracted" in ln for ln in warnings), proc.stderr
    with open(out / "inputs.csv", newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    with open(tmp_path / "alone" / "inputs.csv", newline="", encoding="utf-8") as fh:
        (want,) = list(csv.DictReader(fh))
    assert int(row["records"]) == int(want["records"]) > 0  # the hive itself was read
