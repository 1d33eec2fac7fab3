"""Forensic soundness: every command opens its evidence read-only (audit hook on open/mmap), and
the evidence is byte-for-byte and metadata-for-metadata the same after a full run."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
AUDIT = Path(__file__).resolve().parent / "audit_run.py"
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _state(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[str(p)] = (digest, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
    return out


def _run_audited(tmp_path: Path, *args: object) -> tuple[subprocess.CompletedProcess, list[dict]]:
    log = tmp_path / "audit.jsonl"
    proc = subprocess.run([sys.executable, str(AUDIT), str(log), "--", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, events


def _evidence(tmp_path: Path) -> Path:
    ev = tmp_path / "evidence"
    ev.mkdir()
    for name in ("hpbase.dll", "hpbase_hp1.dll", "hpkern.sys"):
        shutil.copy2(SAMPLES / "pe" / name, ev / name)
    shutil.copy2(SAMPLES / "pe" / "mem" / "hp1.hpbase.dll@7ffb12340000.bin", ev / "mem.bin")
    shutil.copy2(SAMPLES / "pe" / "mem" / "hp1.hpat@7ffb12346000.bin", ev / "hpat.bin")
    shutil.copytree(SAMPLES / "evtx" / "HP-WS-001", ev / "HP-WS-001", copy_function=shutil.copy2)
    with zipfile.ZipFile(ev / "HP-WS-002.zip", "w") as zf:
        for f in sorted((SAMPLES / "evtx" / "HP-WS-002").rglob("*.evtx")):
            zf.write(f, f.relative_to(SAMPLES / "evtx"))
    shutil.copy2(SAMPLES / "kb" / "KB5052105-file-information.csv", ev / "KB5052105.csv")
    shutil.copy2(SAMPLES / "win11-24h2-hotpatch.raw", ev / "memory.raw")
    shutil.copytree(SAMPLES / "symbols", ev / "symbols", copy_function=shutil.copy2)
    shutil.copy2(SAMPLES / "memimage-kb.json", ev / "kb.json")
    (ev / "rules.yar").write_text('rule mz { strings: $a = "MZ" condition: $a at 0 }\n')
    return ev


COMMANDS = {
    "hash": lambda ev, out: ("hash", "-q", "-f", "json", "-o", out / "h.json", ev / "hpbase.dll",
                             ev / "mem.bin"),
    "pe-info": lambda ev, out: ("pe", "info", "-f", "json", ev / "hpbase.dll",
                                ev / "hpbase_hp1.dll"),
    "pe-diff": lambda ev, out: ("pe", "diff", "--disk", ev / "hpbase.dll",
                                "--memory", ev / "mem.bin", "--base", "0x7ffb12340000",
                                "--patch", f"{ev / 'hpbase_hp1.dll'}@0x7ffb12400000",
                                "--region", f"{ev / 'hpat.bin'}@0x7ffb12346000",
                                "-f", "csv", "-o", out / "d.csv"),
    "timeline": lambda ev, out: ("timeline", ev / "HP-WS-001", ev / "HP-WS-002.zip", "-o",
                                 out / "tl", "-j", "1"),
    "manifest-import": lambda ev, out: ("manifest", "import", ev / "KB5052105.csv", "-o",
                                        out / "m.json"),
    "store-build": lambda ev, out: ("store", "build", ev, "--db", out / "s.db", "--kb", "KB5052105",
                                    "-j", "1"),
    "dump-analyze": lambda ev, out: ("dump", "analyze", ev / "memory.raw", "-s", ev / "symbols",
                                     "--reference", ev, "--manifest", ev / "kb.json",
                                     "--yara", ev / "rules.yar", "-o", out / "dump", "-q"),
    "yara": lambda ev, out: ("yara", ev / "rules.yar", ev, "-f", "csv", "-o", out / "y.csv",
                             "--no-cache"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_evidence_opened_read_only_and_unchanged(tmp_path, command):
    ev = _evidence(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    before = _state(ev)
    proc, events = _run_audited(tmp_path, *COMMANDS[command](ev, out))
    assert proc.returncode in (0, 3), proc.stderr
    assert "Traceback" not in proc.stderr
    root = str(ev.resolve())
    touched = [e for e in events if (e.get("path") or e.get("fd_path") or "").startswith(root)]
    assert touched, "the audit hook saw no evidence opened"
    for e in touched:
        if e["event"] == "open":
            assert not (isinstance(e["mode"], str) and set(e["mode"]) & set("wax+")), e
            assert not (e["flags"] or 0) & WRITE_FLAGS, e
        else:
            assert e["access"] == 1, e  # mmap.ACCESS_READ
    assert _state(ev) == before
