"""Helpers the live tests use to observe a target from outside (not the scanner's code)."""
from __future__ import annotations

import hashlib
import time


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
