"""FIFOs, devices and sockets (and symlinks to them) named as evidence: refused with one line
naming the file and what it is, never opened in a way that blocks (a FIFO's open waits for a
writer, /dev/zero never ends), in a folder or a collection beside good logs (those are read),
through the CLI with a timeout: a hang fails the test instead of stalling the suite."""
from __future__ import annotations

import csv
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

TIMEOUT = 60  # the real runs take a few seconds; the hang this guards against was forever
NOT_READ = "not a regular file: not read"


@pytest.fixture
def run(cli):
    """The CLI under a timeout, never a traceback."""
    def _run(*args):
        proc = cli(*args, timeout=TIMEOUT)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc
    return _run


def _refusals(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if NOT_READ in ln]


@pytest.fixture
def sock_dir():
    # AF_UNIX paths are limited to ~108 bytes: pytest's tmp_path can be longer
    d = tempfile.mkdtemp(prefix="hpf-s-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def _socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    return s


def test_fifo_named_system_evtx(run, tmp_path):
    fifo = tmp_path / "System.evtx"
    os.mkfifo(fifo)
    proc = run("timeline", fifo, "-o", tmp_path / "out", "--no-html")
    assert proc.returncode == 2
    assert f"{fifo}: no records could be read: is a FIFO (named pipe), {NOT_READ}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null"])
def test_symlink_to_a_character_device(run, tmp_path, target):
    for name in (".evtx", "Security.evtx"):  # the dotfile name, and a plain one
        link = tmp_path / name
        link.symlink_to(target)
        proc = run("timeline", link, "-o", tmp_path / f"out{name}", "--no-html")
        assert proc.returncode == 2, proc.stderr
        assert (f"is a symbolic link to a character device ({target}), {NOT_READ}"
                in proc.stderr)
        link.unlink()


def test_folder_and_collection_keep_the_good_logs(run, tmp_path, shared_data, sock_dir):
    """A triage collection (KAPE layout) whose Logs folder holds one real log beside a FIFO,
    a /dev/zero symlink, a socket and a FIFO named as a zip: each refused with one warning,
    the real log read in full, exit 3 (partial)."""
    logs = tmp_path / "HOST1" / "C" / "Windows" / "System32" / "winevt" / "Logs"
    logs.mkdir(parents=True)
    shutil.copy(shared_data / "evtx" / "system.evtx", logs / "System.evtx")
    os.mkfifo(logs / "Security.evtx")
    (logs / "Application.evtx").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "HOST1" / "more.zip")
    sock = _socket(sock_dir / "Setup.evtx")
    try:
        (logs / "Setup.evtx").symlink_to(sock_dir / "Setup.evtx")
        out = tmp_path / "out"
        proc = run("timeline", tmp_path / "HOST1", "-o", out, "--no-html")
    finally:
        sock.close()
    assert proc.returncode == 3, proc.stderr
    refused = _refusals(proc.stderr)
    assert len(refused) == 4, proc.stderr
    for name, what in (("Security.evtx", "a FIFO (named pipe)"),
                       ("Application.evtx", "a symbolic link to a character device"),
                       ("Setup.evtx", "a symbolic link to a socket"),
                       ("more.zip", "a FIFO (named pipe)")):
        assert any(f"{name}: is {what}" in ln for ln in refused), (name, refused)
    with open(out / "inputs.csv", newline="", encoding="utf-8") as fh:
        rows = {Path(r["source"]).name: r for r in csv.DictReader(fh)}
    assert int(rows["System.evtx"]["records"]) > 1000 and not rows["System.evtx"]["warnings"]
    assert rows["Security.evtx"]["records"] == "0" and NOT_READ in rows["Security.evtx"]["warnings"]
    # the same log alone gives the same records: nothing of the good one was lost
    alone = run("timeline", logs / "System.evtx", "-o", tmp_path / "alone", "--no-html")
    assert alone.returncode == 0, alone.stderr
    with open(tmp_path / "alone" / "events.csv", encoding="utf-8") as a, \
            open(out / "events.csv", encoding="utf-8") as b:
        assert a.read() == b.read()


def test_socket_given_directly(run, tmp_path, sock_dir):
    path = sock_dir / "System.evtx"
    sock = _socket(path)
    try:
        proc = run("timeline", path, "-o", tmp_path / "out", "--no-html")
    finally:
        sock.close()
    assert proc.returncode == 2
    assert f"is a socket, {NOT_READ}" in proc.stderr


# -- the memory side: dump analyze, pe info, pe diff -------------------------------------------

@pytest.fixture
def specials(tmp_path):
    fifo = tmp_path / "image.raw"
    os.mkfifo(fifo)
    dev = tmp_path / "dev.raw"
    dev.symlink_to("/dev/zero")
    return {"fifo": (fifo, "a FIFO (named pipe)"),
            "device": (dev, "a symbolic link to a character device (/dev/zero)")}


@pytest.mark.parametrize("which", ["fifo", "device"])
def test_dump_analyze_refuses(run, tmp_path, specials, which):
    path, what = specials[which]
    proc = run("dump", "analyze", path, "-o", tmp_path / "out", "-q")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hpforensics: error: {path}: is {what}, {NOT_READ}"


@pytest.mark.parametrize("which", ["fifo", "device"])
def test_pe_info_refuses_and_keeps_the_good_file(run, specials, real_pe_files, which):
    path, what = specials[which]
    proc = run("pe", "info", path, real_pe_files[0], "-f", "json")
    assert proc.returncode == 3, proc.stderr  # partial: the real DLL is described
    assert f"{path}: is {what}, {NOT_READ}" in proc.stderr
    assert real_pe_files[0].name in proc.stdout


@pytest.mark.parametrize("which", ["fifo", "device"])
@pytest.mark.parametrize("side", ["--disk", "--memory"])
def test_pe_diff_refuses(run, specials, real_pe_files, which, side):
    path, what = specials[which]
    disk, memory = (path, real_pe_files[0]) if side == "--disk" else (real_pe_files[0], path)
    proc = run("pe", "diff", "--disk", disk, "--memory", memory, "--base", "0x180000000")
    assert proc.returncode == 2
    assert f"is {what}, {NOT_READ}" in proc.stderr and path.name in proc.stderr
