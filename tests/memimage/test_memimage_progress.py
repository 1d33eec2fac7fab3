"""`dump analyze` shows a progress bar on a terminal and nothing of it when piped; the plugins
report progress on Volatility's own channel (`vol` prints it on stderr, -q mutes it)."""
from __future__ import annotations

import os
import pty
import subprocess
import sys

from memimage_helpers import IMAGE, REPO, SAMPLES, SYMBOLS, VOL, VOL_SYMBOLS

BAR = "opening image"  # the bar's first description, before Volatility's automagic runs


def _argv(out) -> list[str]:
    return [sys.executable, "-m", "hpforensics", "dump", "analyze", str(IMAGE), "-s",
            str(SYMBOLS), "--reference", str(SAMPLES / "pe"), "-o", str(out)]


def test_progress_bar_on_a_terminal(tmp_path):
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120")
    proc = subprocess.Popen(_argv(tmp_path / "o"), stdout=slave, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=300) == 0
    os.close(master)
    text = seen.decode(errors="replace")
    assert BAR in text and "\x1b[" in text  # drawn, with the terminal's control codes
    assert "%" in text


def test_no_progress_when_piped(tmp_path):
    proc = subprocess.run(_argv(tmp_path / "o"), capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert BAR not in proc.stdout and BAR not in proc.stderr
    assert "\x1b[" not in proc.stdout + proc.stderr
    assert "Hotpatch images" in proc.stdout  # the tables still print


def test_plugin_progress_on_volatilitys_channel(tmp_path):
    def vol(*quiet: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VOL), *quiet, "--offline", "--cache-path", str(tmp_path),
                               "-r", "none", "-f", str(IMAGE), "-s", str(VOL_SYMBOLS), "-p",
                               str(REPO / "plugins"), "windows.hotpatch.Verify", "--reference",
                               str(SAMPLES / "pe")], capture_output=True, text=True, cwd=REPO,
                              timeout=300)

    loud, quiet = vol(), vol("-q")
    assert loud.returncode == quiet.returncode == 0, loud.stderr
    steps = [line for line in loud.stderr.split("\r") if "hotpatch: " in line]
    assert any("notepad.exe (3128)" in line for line in steps)
    assert "hotpatch: " not in quiet.stderr
