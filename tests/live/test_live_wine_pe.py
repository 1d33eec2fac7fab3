"""PE images mapped into a Linux process the way Wine maps them go through the engine's PE path:
laid out and relocated as the loader would, then compared — here with a real Microsoft DLL."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hpforensics.live.scan import ScanOptions
from hpforensics.model import Verdict
from hpforensics.sources.live import scan_live, select_backend

HERE = Path(__file__).resolve().parent


@pytest.fixture
def pe_process(tmp_path: Path, shared_data: Path):
    gcc = shutil.which("gcc") or shutil.which("cc")
    exe = tmp_path / "peload"
    subprocess.run([gcc, "-O1", "-o", str(exe), str(HERE / "peload.c")], check=True)
    dll = (shared_data / "pe" / "vcruntime140.dll").resolve()  # the kernel maps the real path
    proc = subprocess.Popen([str(exe), str(dll)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, bufsize=1)
    assert proc.stdout.readline().strip() == "ready", f"peload exited {proc.poll()}"
    proc.stdin.write("p\n")
    pid, base = proc.stdout.readline().split()
    yield proc, int(base, 16), dll
    proc.stdin.write("q\n")
    proc.stdin.close()
    proc.wait(timeout=5)


def test_wine_style_pe_is_verified_against_its_file(pe_process):
    proc, base, dll = pe_process
    result = scan_live(select_backend(), pids=[proc.pid], options=ScanOptions())
    (module,) = [m for m in result.modules if m.module == "vcruntime140.dll"]
    assert module.module_base == base and module.reference == f"disk:{dll}"
    assert module.status == "ok" and module.pages_unexplained == 0
    assert module.pages_verified > 0x10  # .text alone is 18 pages
    assert not [f for f in result.findings if f.verdict is Verdict.UNEXPLAINED]

    # A 5-byte jmp written over code in .text (by the test, through /proc/PID/mem)
    address = base + 0x1000 + 0x200
    with open(f"/proc/{proc.pid}/mem", "rb") as fh:
        fh.seek(address)
        before = fh.read(5)
    new = bytes(b ^ 0xA5 for b in before)
    with open(f"/proc/{proc.pid}/mem", "r+b", buffering=0) as fh:
        fh.seek(address)
        fh.write(new)
    result = scan_live(select_backend(), pids=[proc.pid], options=ScanOptions())
    changed = [f for f in result.findings if f.module == "vcruntime140.dll"
               and f.verdict is not Verdict.UNAVAILABLE]
    # the lead starts at the original instruction holding the first changed byte
    (f,) = changed
    assert f.verdict is Verdict.UNEXPLAINED and f.address + f.size == address + 5
    assert 0 <= address - f.address < 16
    if f.address < address:
        assert f.extra["first_changed"] == hex(address)
    lead = address - f.address
    assert f.actual[lead:] == new and f.expected[lead:] == before
    assert f.original_disassembly and f.disassembly


def test_pe_file_mapped_as_data_is_not_an_image(shared_data: Path):
    """A program that mmaps a DLL to read it (pefile, lief, a scanner) has not loaded it."""
    import sys

    code = ("import mmap, sys; f = open(sys.argv[1], 'rb'); "
            "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); m[:2]; "
            "print('ready', flush=True); sys.stdin.readline()")
    dll = (shared_data / "pe" / "msvcp140.dll").resolve()  # /proc/PID/maps shows the real path
    proc = subprocess.Popen([sys.executable, "-c", code, str(dll)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert str(dll) in open(f"/proc/{proc.pid}/maps").read()
        result = scan_live(select_backend(), pids=[proc.pid])
        assert result.processes[0].status == "ok"
        assert not [m for m in result.modules if m.module == "msvcp140.dll"]
        assert not [f for f in result.findings if f.verdict is Verdict.UNEXPLAINED]
    finally:
        proc.stdin.close()
        proc.wait(timeout=5)
