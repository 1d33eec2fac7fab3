"""The memory side on hostile files: `dump analyze`, `pe info` and `pe diff` given names that are
not UTF-8, sparse files (a 64 GiB image of holes, a real image or DLL padded with a 4 GiB hole)
and truncated files: a clear error or a whole result, the names escaped the same in every
output, never a hang or a traceback (FIFOs and devices: test_hostile_special_files.py).
Through the CLI, with timeouts."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
IMAGE = SAMPLES / "win11-24h2-hotpatch.raw"
SYMBOLS = SAMPLES / "symbols"
PE = SAMPLES / "pe"
BASE = "0x7ffb12340000"
ATTACKED = PE / "mem" / "attacked.hpbase.dll@7ffb12340000.bin"
HOLE = 4 << 30


def _bad(folder: Path, raw: bytes) -> Path:
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), raw)))


def _clean(proc) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "\\udc" not in proc.stdout + proc.stderr and "\ufffd" not in proc.stdout + proc.stderr


def _texts(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())}


def _analyze(cli, image: Path, out: Path, timeout: int = 300):
    return cli("dump", "analyze", image, "--symbols", SYMBOLS, "--reference", PE, "-o", out,
               "-q", timeout=timeout)


def test_dump_analyze_non_utf8_names(cli, tmp_path):
    plain = tmp_path / "mem.raw"
    shutil.copy(IMAGE, plain)
    odd = _bad(tmp_path, b"mem\xff.raw")
    os.link(plain, odd)
    want = _analyze(cli, plain, tmp_path / "want")
    assert want.returncode == 0, want.stderr
    out = _bad(tmp_path, b"out\xfe")
    proc = _analyze(cli, odd, out)
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"wrote {tmp_path}/out\\xfe/findings.csv, "), proc.stderr
    got, expected = _texts(out), _texts(tmp_path / "want")
    assert set(got) == set(expected)
    for name, text in got.items():
        assert "\\udc" not in text, name
        # the same analysis: only the image's name differs, and every output shows it escaped
        assert text.replace("mem\\\\xff.raw", "mem.raw").replace("mem\\xff.raw", "mem.raw") == \
            expected[name].replace(str(tmp_path / "want"), str(out)), name
    doc = json.loads(got["report.json"])
    assert doc["inputs"]["image"] == str(tmp_path / "mem\\xff.raw")
    assert doc["custody"]["inputs"][0]["path"] == str(tmp_path / "mem\\xff.raw")
    assert doc["findings"] and all(f["source"].endswith("mem\\xff.raw") for f in doc["findings"])


def test_pe_info_and_diff_non_utf8_names(cli, tmp_path, shared_data):
    dll = _bad(tmp_path, b"con\xfecrt.dll")
    shutil.copy(shared_data / "pe" / "concrt140.dll", dll)
    table = cli("pe", "info", dll, timeout=120)
    _clean(table)
    assert table.returncode == 0 and "con\\xfecrt.dll" in table.stdout
    info = cli("pe", "info", dll, "-f", "json", timeout=120)
    assert json.loads(info.stdout)[0]["file"] == str(tmp_path / "con\\xfecrt.dll")
    disk, memory = _bad(tmp_path, b"hp\xffbase.dll"), _bad(tmp_path, b"att\xfe.bin")
    shutil.copy(PE / "hpbase.dll", disk)
    shutil.copy(ATTACKED, memory)
    args = ("pe", "diff", "--disk", disk, "--memory", memory, "--base", BASE)
    shown_disk, shown_memory = "hp\\xffbase.dll", "att\\xfe.bin"
    for fmt in ("table", "json", "csv"):
        out = tmp_path / f"diff.{fmt}"
        proc = cli(*args, "-f", fmt, "-o", out, timeout=120)
        _clean(proc)
        assert proc.returncode == 0, proc.stderr
        text = out.read_text(encoding="utf-8")
        assert "\\udc" not in text and "\ufffd" not in text
        if fmt == "json":
            doc = json.loads(text)
            assert doc["modules"][0]["module"] == shown_disk
            assert {f["source"] for f in doc["findings"]} == {f"file:{tmp_path}/{shown_memory}"}
            assert [i["path"] for i in doc["custody"]["inputs"]] == [
                f"{tmp_path}/{shown_disk}", f"{tmp_path}/{shown_memory}"]
        elif fmt == "csv":
            assert list(csv.DictReader(text.splitlines()))  # the findings
            custody = json.loads(Path(f"{out}.custody.json").read_text(encoding="utf-8"))
            assert custody["inputs"][0]["path"] == f"{tmp_path}/{shown_disk}"
        else:
            assert shown_disk in text


def test_dump_analyze_sparse(cli, tmp_path):
    """A file of holes claiming 64 GiB: no page tables, one line, in seconds (nothing reads
    it whole). The real image padded with a 4 GiB hole: the same analysis as the image."""
    holes = tmp_path / "holes.raw"
    with open(holes, "wb") as fh:
        fh.truncate(64 << 30)
    start = time.monotonic()
    proc = _analyze(cli, holes, tmp_path / "o1", timeout=120)
    assert proc.returncode == 2 and time.monotonic() - start < 60
    assert proc.stderr == (f"hpforensics: error: {holes}: no Windows x64 kernel page tables "
                           "found (not a raw physical memory image of Windows 10/11 x64, or "
                           "truncated)\n")
    padded = tmp_path / "padded.raw"
    shutil.copy(IMAGE, padded)
    with open(padded, "r+b") as fh:
        fh.truncate(IMAGE.stat().st_size + HOLE)
    assert padded.stat().st_blocks * 512 < 64 << 20  # sparse: the hole takes no disk
    want = _analyze(cli, IMAGE, tmp_path / "want")
    proc = _analyze(cli, padded, tmp_path / "o2")
    _clean(proc)
    assert proc.returncode == want.returncode == 0, proc.stderr
    for name in ("findings.csv", "modules.csv", "hotpatch-images.csv"):
        assert (tmp_path / "o2" / name).read_text().replace("padded.raw", IMAGE.name) == \
            (tmp_path / "want" / name).read_text(), name


def test_pe_info_and_diff_sparse(cli, tmp_path, shared_data):
    """pefile's checksum loop took hours and 8 GB on a DLL with a 4 GiB (sparse) overlay;
    pe_checksum takes seconds. A carved module padded with a 256 MiB hole is read as
    extension pages past SizeOfImage, so pe diff still verifies it (it holds the carve in
    memory: a smaller hole keeps the test light)."""
    dll = tmp_path / "vcruntime140.dll"
    shutil.copy(shared_data / "pe" / "vcruntime140.dll", dll)
    with open(dll, "r+b") as fh:
        fh.truncate(HOLE)
    info = cli("pe", "info", dll, "-f", "json", timeout=300)
    assert info.returncode == 0, info.stderr
    (doc,) = json.loads(info.stdout)
    assert doc["checksum_ok"] is False  # the overlay changed the file's checksum
    memory = tmp_path / "padded.bin"
    shutil.copy(ATTACKED, memory)
    with open(memory, "r+b") as fh:
        fh.truncate(256 << 20)
    proc = cli("pe", "diff", "--disk", PE / "hpbase.dll", "--memory", memory, "--base", BASE,
               "-f", "json", timeout=300)
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["modules"][0]["module"] == "hpbase.dll"


def test_pe_info_and_diff_truncated(cli, tmp_path, shared_data):
    cut = tmp_path / "cut.dll"
    cut.write_bytes((shared_data / "pe" / "vcruntime140.dll").read_bytes()[:40000])
    proc = cli("pe", "info", cut, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"hpforensics: error: {cut} at offset 0x")
    short = tmp_path / "short.bin"
    short.write_bytes(ATTACKED.read_bytes()[:0x3000])
    proc = cli("pe", "diff", "--disk", PE / "hpbase.dll", "--memory", short, "--base", BASE,
               timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{short} at offset 0x3000" in proc.stderr


def test_dump_analyze_interrupted(tmp_path):
    """SIGTERM while dump analyze reads (custody hashing a 4 GiB sparse image): one line, exit
    143, nothing in the output folder."""
    padded = tmp_path / "padded.raw"
    shutil.copy(IMAGE, padded)
    with open(padded, "r+b") as fh:
        fh.truncate(IMAGE.stat().st_size + HOLE)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hpforensics", "dump", "analyze", str(padded),
                             "--symbols", str(SYMBOLS), "-o", str(out), "-q"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not list(out.glob(".hpf-partial-*")) and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr.strip() == (f"hpforensics: error: {out}: the run did not finish (terminated "
                              "(SIGTERM)): no outputs were put in place")
    assert list(out.iterdir()) == []


def test_relocations_past_size_of_image_found_by_the_fuzzer():
    """fuzz_pe's slow unit (libFuzzer flagged 12 s): 2.4 KiB whose relocation directory starts
    past SizeOfImage, in a section claiming gigabytes of zero tail: 8 M relocation entries
    built from nothing. Now the directory is refused at its field, at once."""
    from hpforensics.pe.image import PEImage

    data = (REPO / "tests" / "corrupt" / "regressions"
            / "pe-relocations-past-image.bin").read_bytes()
    start = time.monotonic()
    image = PEImage.from_bytes(data[1:], mapped=bool(data[0] & 1), strict=not data[0] & 2)
    assert time.monotonic() - start < 2
    assert any(
        "base relocation directory (RVA 0xffffffff, size 0xffffffff) runs past "
        "SizeOfImage 0x5000" in str(p)
        for p in image.problems
    ), image.problems
