"""Interrupted runs leave no output that looks complete: SIGINT (to the run, and to its whole
process group as a terminal's ^C does, forked readers included), SIGTERM, a full disk (a
small tmpfs as -o) and a file-size limit (EFBIG) all end with one line saying the run did not
finish, a non-zero exit, and an output folder holding nothing of the run. Two runs given the
same -o: the second refuses while the first writes. Real subprocesses and signals."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HPF = [sys.executable, "-m", "hpforensics"]
REPO = Path(__file__).resolve().parents[2]
UNFINISHED = "the run did not finish"


@pytest.fixture
def logs(tmp_path, shared_data) -> Path:
    """Four real logs: python-evtx takes ~30 s over them, time to signal the run mid-way."""
    folder = tmp_path / "logs"
    folder.mkdir()
    for name in ("system.evtx", "security.evtx", "plaso-System.evtx", "plaso-System2.evtx"):
        shutil.copy(shared_data / "evtx" / name, folder / name)
    return folder


def _default_interrupt() -> None:
    # A suite started as a background job of a non-interactive shell (`make test &`, nohup)
    # inherits SIGINT ignored, and so would the run: it would finish instead of stopping. A
    # user's ^C reaches a run whose SIGINT is the default, so the run starts that way here.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(logs: Path, out: Path, *extra: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([*HPF, "timeline", str(logs), "-o", str(out), "--parser",
                             "python-evtx", *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_interrupt,
                            **kw)


def _writing(out: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the run has begun writing its outputs (events.csv in its staging folder)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if list(out.glob(".hpf-partial-*/events.csv")):
            time.sleep(0.5)  # some rows are in it
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run never started writing")


def _one_line(stderr: str, reason: str, out: Path) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines == [f"hpforensics: error: {out}: {UNFINISHED} ({reason}): no outputs were put "
                     "in place"], stderr


@pytest.mark.parametrize("sig, code, reason, jobs, group", [
    (signal.SIGINT, 130, "interrupted (SIGINT)", "1", False),
    (signal.SIGINT, 130, "interrupted (SIGINT)", "2", True),  # ^C: the parent and its readers
    (signal.SIGTERM, 143, "terminated (SIGTERM)", "1", False),
    (signal.SIGTERM, 143, "terminated (SIGTERM)", "2", False),
])
def test_signal_mid_run(tmp_path, logs, sig, code, reason, jobs, group):
    out = tmp_path / "out"
    proc = _start(logs, out, "-j", jobs, start_new_session=True)
    try:
        _writing(out, proc)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, stderr
    _one_line(stderr, reason, out)
    assert list(out.iterdir()) == []  # nothing of the run, not even its staging folder


def _fsize(limit: int):
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_file_size_limit(tmp_path, logs):
    """ulimit -f: a write past the limit fails with EFBIG (Python ignores SIGXFSZ)."""
    out = tmp_path / "out"
    proc = subprocess.run([*HPF, "timeline", str(logs), "-o", str(out)], cwd=REPO, text=True,
                          capture_output=True, preexec_fn=_fsize(64 << 10), timeout=300)
    assert proc.returncode == 2, proc.stderr
    _one_line(proc.stderr, "File too large", out)
    assert list(out.iterdir()) == []


def test_disk_full_tmpfs(tmp_path, logs):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        # Unprivileged: the same test again in a user and mount namespace of its own, where it
        # may mount (a skip here would leave ENOSPC untested wherever CI is not root).
        assert not os.environ.get("HPF_IN_NAMESPACE"), (
            f"cannot mount a tmpfs even in a namespace of its own: {mount.stderr.strip()}")
        inner = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-m", "pytest",
             "-q", "-p", "no:cacheprovider", f"{__file__}::test_disk_full_tmpfs"],
            cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**os.environ, "HPF_IN_NAMESPACE": "1"})
        assert inner.returncode == 0, inner.stdout + inner.stderr
        return
    try:
        out = mnt / "out"
        proc = subprocess.run([*HPF, "timeline", str(logs), "-o", str(out)], cwd=REPO,
                              text=True, capture_output=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        _one_line(proc.stderr, "No space left on device", out)
        assert list(out.iterdir()) == []
        # with room again, the same -o gives a complete run
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        ok = subprocess.run([*HPF, "timeline", str(logs / "system.evtx"), "-o", str(out),
                             "--no-html"], cwd=REPO, text=True, capture_output=True, timeout=300)
        assert ok.returncode == 0, ok.stderr
        assert (out / "events.csv").is_file() and (out / "custody.json").is_file()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_second_run_on_the_same_output_refuses(tmp_path, logs):
    out = tmp_path / "out"
    first = _start(logs, out, start_new_session=True)
    try:
        _writing(out, first)
        second = subprocess.run([*HPF, "timeline", str(logs / "system.evtx"), "-o", str(out)],
                                cwd=REPO, text=True, capture_output=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr == (f"hpforensics: error: {out}: another hpforensics run is "
                                 "writing its outputs here; not started (give another --output)\n")
        assert first.poll() is None  # the first goes on, untouched
        os.killpg(first.pid, signal.SIGKILL)  # killed outright: its staging folder stays
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    stale = list(out.glob(".hpf-partial-*"))
    assert len(stale) == 1 and not (out / "events.csv").exists()  # nothing looks complete
    # the lock went with the killed process; the next run removes the stale staging folder
    third = subprocess.run([*HPF, "timeline", str(logs / "system.evtx"), "-o", str(out),
                            "--no-html"], cwd=REPO, text=True, capture_output=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.{e}" for n in ("compliance", "devices", "events", "inputs", "months",
                              "summary", "summary-devices", "timeline", "updates")
         for e in ("csv", "jsonl")] + ["custody.json"])
