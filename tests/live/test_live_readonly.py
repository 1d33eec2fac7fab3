"""The scanner never writes to, attaches to, signals or stops a target: proved on a real run.

The whole-host scan runs in a subprocess under a Python audit hook that records every open,
every process-control call and every native-library lookup; the target's memory and state are
compared before and after.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests_live_helpers import memory_digest, proc_state, wait_idle

AUDITED = textwrap.dedent(
    """
    import json, sys
    events = []
    WATCH = ("os.kill", "os.killpg", "signal.pthread_kill", "subprocess.Popen", "os.system",
             "os.posix_spawn", "os.exec", "os.fork", "os.forkpty", "ctypes.dlsym",
             "ctypes.dlopen", "mmap.__new__")
    def hook(event, args):
        if event == "open":
            events.append(["open", str(args[0]), args[1], args[2]])
        elif event in WATCH:
            events.append([event, repr(args)])
    sys.addaudithook(hook)
    from hpforensics.cli.app import main
    try:
        main(["live", "--format", "json", "-q", "-o", sys.argv[1]])
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    with open(sys.argv[2], "w") as fh:
        json.dump({"code": code, "events": events}, fh)
    """
)


def test_scan_is_read_only(target, tmp_path: Path):
    # one changed page, so the scan reads the target's memory and its file, not only pagemap
    target.write(target.func, b"\xcc")
    before = (wait_idle(target.pid), proc_state(target.pid))
    report, audit = tmp_path / "report.json", tmp_path / "audit.json"
    subprocess.run([sys.executable, "-c", AUDITED, str(report), str(audit)], check=True,
                   cwd=Path(__file__).resolve().parents[2], timeout=300)
    after = (memory_digest(target.pid), proc_state(target.pid))
    assert before == after  # same bytes in every readable mapping, same state, no tracer
    assert after[1]["TracerPid"] == "0" and after[1]["State"][0] == "S"

    log = json.loads(audit.read_text())
    assert log["code"] == 0
    opens = [e for e in log["events"] if e[0] == "open"]
    mem_opens = [e for e in opens if e[1].startswith("/proc/") and e[1].endswith("/mem")]
    assert len(mem_opens) >= 3  # it did read processes, the target among them
    assert f"/proc/{target.pid}/mem" in {e[1] for e in mem_opens}
    for _, path, mode, flags in opens:
        if path.startswith("/proc/"):
            assert flags & os.O_ACCMODE == os.O_RDONLY, (path, mode, flags)
            assert mode in (None, "r", "rb"), (path, mode)
    # the only files opened for writing are the report and this harness's audit log (and
    # Python's own bytecode cache)
    written = {path for _, path, _, flags in opens
               if flags & os.O_ACCMODE != os.O_RDONLY and "__pycache__" not in path}
    assert written == {str(report), str(audit)}, written
    assert f"/proc/{target.pid}/pagemap" in {e[1] for e in opens}
    assert any(e[1].startswith(f"/proc/{target.pid}/map_files/") for e in opens)
    others = [e for e in log["events"] if e[0] != "open"]
    # no signal, no child process, no mapping of process memory; native libraries (capstone)
    # may load, but no process-control function is looked up through ctypes
    forbidden = ("ptrace", "process_vm_writev", "kill", "tgkill", "waitpid", "write")
    assert not [e for e in others if not e[0].startswith("ctypes.")], others
    assert not [e for e in others if e[0] == "ctypes.dlsym"
                and any(f"'{name}'" in e[1] for name in forbidden)], others
    doc = json.loads(report.read_text())
    assert any(p["pid"] == target.pid and p["status"] == "ok" for p in doc["processes"])
    assert [f["address"] for f in doc["findings"] if f["pid"] == target.pid] == [hex(target.func)]
    assert target.ask("p").split()[0] == str(target.pid)  # still running and answering
