"""PE images mapped into a Linux process the way Wine maps them go through the engine's PE path:
laid out and relocated as the loader would, then compared — here with a real Microsoft DLL."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hpforensics.live.scan import ScanOptions
from hpforensics.model import Verdict
from hpforensics.live.space import scan_live, select_backend

HERE = Path(__file__).resolve().parent


def _peload(tmp_path: Path, shared_data: Path, *extra: str):
    gcc = shutil.which("gcc") or shutil.which("cc")
    exe = tmp_path / "peload"
    subprocess.run([gcc, "-O1", "-o", str(exe), str(HERE / "peload.c")], check=True)
    dll = (shared_data / "pe" / "vcruntime140.dll").resolve()  # the kernel maps the real path
    proc = subprocess.Popen([str(exe), str(dll), *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout.readline().strip() == "ready", f"peload exited {proc.poll()}"
    proc.stdin.write("p\n")
    pid, base = proc.stdout.readline().split()
    yield proc, int(base, 16), dll
    proc.stdin.write("q\n")
    proc.stdin.close()
    proc.wait(timeout=5)


@pytest.fixture
def pe_process(tmp_path: Path, shared_data: Path):
    yield from _peload(tmp_path, shared_data)


@pytest.fixture
def pe_process_extended(tmp_path: Path, shared_data: Path):
    """vcruntime140.dll followed by three execute-read extension pages, as on 24H2."""
    yield from _peload(tmp_path, shared_data, "3")


def _poke(pid: int, address: int, data: bytes) -> None:
    """What an attacker with write access does (the test, through /proc/PID/mem)."""
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as fh:
        fh.seek(address)
        fh.write(data)


def test_extension_pages_clean_then_attacked(pe_process_extended):
    """Extension pages past SizeOfImage: empty ones give nothing; code written there and an
    HPAT slot aimed outside every patch image are unexplained, with what they lead to."""
    import struct

    proc, base, dll = pe_process_extended
    scan = lambda: scan_live(select_backend(), pids=[proc.pid], options=ScanOptions())  # noqa: E731
    result = scan()
    (module,) = [m for m in result.modules if m.module == "vcruntime140.dll"]
    size = module.size
    ext = base + ((size + 0xFFF) & ~0xFFF)
    assert module.extension_pages == 3 and module.extension_unexplained == 0
    assert module.hpat_stubs_used == module.hpat_stubs_free == 0
    assert not [f for f in result.findings if f.verdict is Verdict.UNEXPLAINED]

    # Code in the first extension page: mov rax, imm64; jmp rax to the image's own .text
    target = base + 0x1000
    _poke(proc.pid, ext + 0x40, bytes.fromhex("48B8") + struct.pack("<Q", target) + b"\xff\xe0")
    # An HPAT stub in the second page whose slot (third page) leads into unmapped memory, and
    # no redirect uses it.
    _poke(proc.pid, ext + 0x1000 + 0x28, bytes.fromhex("FF25FA0F0000CCCC"))
    _poke(proc.pid, ext + 0x2000 + 0x28, struct.pack("<Q", 0x4141_0000_0000))
    result = scan()
    bad = sorted((f for f in result.findings if f.verdict is Verdict.UNEXPLAINED),
                 key=lambda f: f.address)
    assert [(f.address, f.size) for f in bad] == [(ext + 0x40, 12), (ext + 0x2028, 8)], bad
    code, slot = bad
    assert code.disassembly.startswith("movabs rax") and code.branch_target == target
    assert code.target_owner == "vcruntime140.dll+0x1000" and code.rva == ext + 0x40 - base
    assert "no redirect in this image uses it" in slot.reason and slot.target_owner == "unmapped"
    (module,) = [m for m in result.modules if m.module == "vcruntime140.dll"]
    assert module.extension_unexplained == 2 and module.hpat_stubs_used == 0


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
