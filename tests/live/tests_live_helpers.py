"""Helpers the live tests use to observe a target from outside (not the scanner's code)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path


def memory_digest(pid: int) -> str:
    """SHA-256 over every readable mapping of the process (those that read at all)."""
    digest = hashlib.sha256()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("r") or line.rstrip().endswith("[vvar]"):
                continue
            lo, hi = (int(x, 16) for x in span.split("-"))
            digest.update(span.encode())
            try:
                mem.seek(lo)
                digest.update(mem.read(hi - lo))
            except OSError:
                digest.update(b"unreadable")
    return digest.hexdigest()


def proc_state(pid: int) -> dict[str, str]:
    keep = ("State", "TracerPid", "SigPnd", "ShdPnd", "SigBlk")
    with open(f"/proc/{pid}/status") as fh:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
    return {k: fields[k].strip() for k in keep}


def wait_idle(pid: int, timeout: float = 10.0) -> str:
    """Wait until the target's memory stops changing (blocked reading its next command)."""
    deadline = time.monotonic() + timeout
    last = memory_digest(pid)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = memory_digest(pid)
        if now == last and proc_state(pid)["State"].startswith("S"):
            return now
        last = now
    raise AssertionError(f"pid {pid} never went idle")


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
