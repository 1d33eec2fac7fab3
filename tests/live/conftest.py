"""Real processes for the live-scanner tests: a small C target compiled here, driven on stdin.

The tests change the target's code themselves (writing /proc/PID/mem, or asking the target to
patch itself); the scanner only reads.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def live_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "the live tests compile their target with gcc"
    out = tmp_path_factory.mktemp("livebins")
    target, lib = out / "hpf_target", out / "libhpfpatch.so"
    subprocess.run([gcc, "-O1", "-g", "-o", str(target), str(HERE / "target.c"), "-ldl"],
                   check=True)
    subprocess.run([gcc, "-O1", "-shared", "-fPIC", "-o", str(lib), str(HERE / "patchlib.c")],
                   check=True)
    return {"target": target, "lib": lib}


class Target:
    """A running target process and its command loop."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        assert self.ask_line(None) == "ready"
        pid, func, buf = self.ask("p").split()
        assert int(pid) == self.proc.pid
        self.pid = self.proc.pid
        self.func = int(func, 16)
        self.buf = int(buf, 16)

    def ask_line(self, command: str | None) -> str:
        if command is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    ask = ask_line

    def read(self, address: int, size: int) -> bytes:
        with open(f"/proc/{self.pid}/mem", "rb") as fh:
            fh.seek(address)
            return fh.read(size)

    def write(self, address: int, data: bytes) -> None:
        """The test's own helper (never the scanner's): a FOLL_FORCE write, as a debugger does."""
        fd = os.open(f"/proc/{self.pid}/mem", os.O_RDWR)
        try:
            assert os.pwrite(fd, data, address) == len(data)
        finally:
            os.close(fd)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask_line("q")
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def target(live_bins: dict[str, Path]):
    t = Target(live_bins["target"])
    yield t
    t.stop()
