"""The Linux live scanner on real processes: clean host, a changed function, a live patch."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path


from hpforensics.live.scan import ScanOptions
from hpforensics.model import Finding, Verdict
from hpforensics.live.space import ProcessInfo, scan_live, select_backend
from hpforensics.live.linux import LinuxBackend


def _scan(pid: int, **kw) -> list[Finding]:
    result = scan_live(select_backend(), pids=[pid], options=ScanOptions(**kw))
    (proc,) = result.processes
    assert proc.status == "ok", proc.status
    return result.findings


def _changed(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.verdict is not Verdict.UNAVAILABLE]


def test_whole_host_has_no_unexplained_difference():
    totals = {}
    for read_all in (False, True):
        result = scan_live(select_backend(), options=ScanOptions(skip_unchanged=not read_all))
        scanned = [p for p in result.processes if p.status == "ok"]
        assert len(scanned) >= 3  # this test's own python, pytest's parent shell, init...
        assert sum(p.pages_total for p in scanned) > 1000
        unexplained = [f for f in result.findings if f.verdict is Verdict.UNEXPLAINED]
        assert unexplained == [], unexplained[:3]
        if read_all:
            assert sum(p.pages_read for p in scanned) == sum(p.pages_total for p in scanned)
        else:  # pagemap spares nearly every page on a clean host
            assert sum(p.pages_skipped for p in scanned) > 0.9 * sum(p.pages_total for p in scanned)
        # every process has a status, and the ones not scanned say why
        assert all(p.status for p in result.processes)
        totals[read_all] = {(m.pid, m.module_base): m.pages_total for m in result.modules}
    # both modes account the same pages for every module present in both scans
    common = totals[False].keys() & totals[True].keys()
    assert len(common) > 10
    assert {k: totals[False][k] for k in common} == {k: totals[True][k] for k in common}


def test_changed_function_is_reported_exactly(target):
    original = target.read(target.func, 16)
    new = b"\xe9" + struct.pack("<i", (target.buf + 0x40) - (target.func + 5))
    assert all(a != b for a, b in zip(new, original)), "pick bytes that all differ"
    assert _changed(_scan(target.pid)) == []
    target.write(target.func, new)
    for read_all in (False, True):
        (f,) = _changed(_scan(target.pid, skip_unchanged=not read_all))
        assert (f.address, f.size) == (target.func, len(new))
        assert f.verdict is Verdict.UNEXPLAINED
        assert f.actual == new and f.expected == original[: len(new)]
        assert f.branch_target == target.buf + 0x40
        assert f.target_owner.startswith("anonymous rwxp")
        assert f.disassembly == f"jmp {target.buf + 0x40:#x}"
        assert f.module == "hpf_target" and f.rva == target.func - f.module_base
        assert f.extra["entry"] == "hpf_target!target_func"
        assert f.pid == target.pid and f.source.startswith("live:")


def test_redirect_into_loaded_library_is_a_live_patch(target, live_bins):
    assert target.ask("c") == str(20 * 3 + sum(i ^ 20 for i in range(5)) + 7)
    replacement = int(target.ask(f"l {live_bins['lib']} target_func_v2"), 16)
    assert target.ask("c") == str(20 * 3 + 1000)  # the patch is live
    (f,) = _changed(_scan(target.pid))
    assert f.verdict is Verdict.HOTPATCH
    assert f.address == target.func and f.size <= 12
    assert f.branch_target == replacement
    assert f.patch_image == str(live_bins["lib"])
    assert f.target_owner == "libhpfpatch.so"
    assert f.reason == "live patch: hpf_target!target_func redirected into libhpfpatch.so"
    assert f.extra["target"] == "libhpfpatch.so!target_func_v2"
    assert "jmp rax" in f.disassembly


def test_process_gone_or_refused_is_reported_and_scan_goes_on(target):
    class Flaky(LinuxBackend):
        """Lists one process that does not exist, and kills the target just after opening it."""

        def processes(self):
            return [ProcessInfo(target.pid, "hpf_target"), ProcessInfo(os.getpid(), "self"),
                    ProcessInfo(2**22 + 7, "ghost")]

        def open(self, proc):
            space = super().open(proc)
            if proc.pid == target.pid:
                target.proc.kill()
                target.proc.wait()
            return space

    result = scan_live(Flaky())
    status = {p.pid: p.status for p in result.processes}
    assert status[target.pid] == "exited"
    assert status[2**22 + 7] == "exited"
    assert status[os.getpid()] == "ok"
    assert not [f for f in result.findings if f.pid == target.pid]
    assert [m for m in result.modules if m.pid == os.getpid()]


def test_cli_json_schema_matches_the_result_model(target, cli):
    target.write(target.func, b"\xcc\xcc")
    proc = cli("live", "--pid", str(target.pid), "--format", "json", "-q", check=True)
    doc = json.loads(proc.stdout)
    import dataclasses

    from hpforensics.model import ModuleSummary

    (f,) = [f for f in doc["findings"] if f["verdict"] != "unavailable"]
    assert list(f) == [x.name for x in dataclasses.fields(Finding)]
    assert f["address"] == hex(target.func) and f["actual"] == "cccc"
    assert f["verdict"] == "unexplained" and f["disassembly"] == "int3; int3"
    assert f["reason"].endswith("int3 breakpoint: a debugger or a uprobe")
    assert all(list(m) == [x.name for x in dataclasses.fields(ModuleSummary)]
               for m in doc["modules"])
    (p,) = doc["processes"]
    assert p["pid"] == target.pid and p["unexplained"] == 1
    exe = [m for m in doc["modules"] if m["module"] == "hpf_target"]
    assert exe and exe[0]["pages_unexplained"] == 1


def test_cli_fail_on_findings(target, cli):
    assert cli("live", "--pid", str(target.pid), "-q", "--fail-on-findings").returncode == 0
    target.write(target.func, b"\xcc")
    proc = cli("live", "--pid", str(target.pid), "-q", "--fail-on-findings")
    assert proc.returncode == 1 and "unexplained" in proc.stdout


def test_cli_rejects_unknown_format(cli):
    proc = cli("live", "--pid", str(os.getpid()), "--format", "xml")
    assert proc.returncode == 2
    assert proc.stderr.startswith("hpforensics: error: unknown format")
    assert "Traceback" not in proc.stderr


def test_reads_are_page_chunked_and_bounded():
    """Even reading every page, no read is larger than one chunk: no whole-image copies."""
    from hpforensics.live.native import CHUNK_PAGES
    from hpforensics.live.linux import LinuxProcessSpace
    from hpforensics.space import PAGE_SIZE

    sizes: list[int] = []

    class Recording(LinuxProcessSpace):
        def read(self, address, size):
            sizes.append(size)
            return super().read(address, size)

        def read_into(self, address, buf):
            sizes.append(len(buf))
            return super().read_into(address, buf)

    class Backend(LinuxBackend):
        def open(self, proc):
            return Recording(proc, self.source)

    result = scan_live(Backend(), pids=[os.getpid()], options=ScanOptions(skip_unchanged=False))
    biggest = max(m.pages_total for m in result.modules)
    assert biggest > CHUNK_PAGES  # some mapping is larger than a chunk (libpython / python)
    assert sum(sizes) >= biggest * PAGE_SIZE
    assert max(sizes) <= CHUNK_PAGES * PAGE_SIZE


def test_deleted_binary_is_still_compared_with_the_mapped_inode(live_bins, tmp_path,
                                                                monkeypatch):
    import shutil

    from tests_live_helpers import Target

    copy = tmp_path / "hpf_deleted"
    shutil.copy(live_bins["target"], copy)
    t = Target(copy)
    try:
        copy.unlink()  # the process keeps running from a file no path reaches any more
        t.write(t.func, b"\xcc")
        result = scan_live(select_backend(), pids=[t.pid])
        (module,) = [m for m in result.modules if m.module == "hpf_deleted"]
        assert module.status == "ok" and module.reference == f"disk:{copy}"
        (f,) = _changed(result.findings)
        assert (f.address, f.actual, f.verdict) == (t.func, b"\xcc", Verdict.UNEXPLAINED)

        # without CAP_SYS_ADMIN (a container) map_files refuses; /proc/PID/exe still works
        real_open = os.open

        def no_map_files(path, *args, **kw):
            if "/map_files/" in str(path):
                raise PermissionError(1, "Operation not permitted", str(path))
            return real_open(path, *args, **kw)

        monkeypatch.setattr(os, "open", no_map_files)
        result = scan_live(select_backend(), pids=[t.pid])
        (f,) = _changed(result.findings)
        assert (f.address, f.actual) == (t.func, b"\xcc")
    finally:
        monkeypatch.undo()
        t.stop()


def test_cli_yara_and_csv_outputs(target, live_bins, cli, tmp_path):
    target.ask(f"l {live_bins['lib']} target_func_v2")
    rules = Path(__file__).resolve().parents[2] / "rules" / "hooks.yar"
    proc = cli("live", "--pid", str(target.pid), "--yara", str(rules), "-f", "json", "-q",
               check=True)
    (hit,) = [y for y in json.loads(proc.stdout)["yara"] if y["rule"] == "hook_mov_rax_jmp_rax"]
    assert hit["address"] == hex(target.func) and hit["verdict"] == "hotpatch"
    out = tmp_path / "live.csv"
    cli("live", "--pid", str(target.pid), "-f", "csv", "-o", str(out), "-q", check=True)
    import csv

    rows = list(csv.DictReader(out.open()))
    assert [r["verdict"] for r in rows if r["verdict"] != "unavailable"] == ["hotpatch"]
    modules = list(csv.DictReader((tmp_path / "live.modules.csv").open()))
    assert any(m["module"] == "hpf_target" and m["pages_hotpatched"] == "1" for m in modules)
    (p,) = csv.DictReader((tmp_path / "live.processes.csv").open())
    assert p["pid"] == str(target.pid) and p["hotpatch"] == "1"


def test_cli_exit_codes_for_processes_asked_by_number(target, cli):
    gone = cli("live", "--pid", str(2**22 + 11), "-q")
    assert gone.returncode == 2
    assert gone.stderr.strip().splitlines()[-1] == \
        f"hpforensics: error: pid {2**22 + 11}: no such process"
    partial = cli("live", "--pid", str(target.pid), "--pid", str(2**22 + 11), "-q", "-f", "json")
    assert partial.returncode == 3
    assert json.loads(partial.stdout)["processes"][0]["pid"] == target.pid


def test_library_written_in_place_after_start_is_flagged(target, live_bins, tmp_path):
    import shutil
    import time

    lib = tmp_path / "libinplace.so"
    shutil.copy(live_bins["lib"], lib)
    os.utime(lib, (time.time() - 3600, time.time() - 3600))  # installed an hour ago
    target.ask(f"l {lib} target_func_v2")
    result = scan_live(select_backend(), pids=[target.pid])
    (m,) = [m for m in result.modules if m.module == "libinplace.so"]
    assert m.status == "ok" and not result.warnings
    time.sleep(0.1)
    with open(lib, "r+b") as fh:  # same inode: the process's page-cache pages change too
        fh.seek(9)  # e_ident padding: a harmless byte
        fh.write(b"\x01")
    result = scan_live(select_backend(), pids=[target.pid])
    (m,) = [m for m in result.modules if m.module == "libinplace.so"]
    assert m.status.startswith("changed-on-disk")
    assert any(str(lib) in w for w in result.warnings)
    assert not [f for f in result.findings if f.verdict is Verdict.UNEXPLAINED]


def test_name_glob_selects_processes(target, cli):
    proc = cli("live", "--name", "HPF_TARG*", "-q", "-f", "json", check=True)
    pids = [p["pid"] for p in json.loads(proc.stdout)["processes"]]
    assert pids == [target.pid]


def test_process_that_execs_mid_scan_is_not_compared_across_programs(tmp_path):
    """Maps read before an exec describe the old program; the scan must not compare the new
    program's bytes at those addresses with the old files."""
    import subprocess
    import sys
    import time

    code = ("import os, sys; print('ready', flush=True); sys.stdin.readline(); "
            "os.execv('/bin/sleep', ['sleep', '30'])")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"

        class ExecsAfterOpen(LinuxBackend):
            def processes(self):
                return [ProcessInfo(child.pid, "python")]

            def open(self, proc):
                space = super().open(proc)  # maps of the python program are read here
                before = os.readlink(f"/proc/{child.pid}/exe")
                child.stdin.write("go\n")
                child.stdin.flush()
                deadline = time.monotonic() + 10
                while os.readlink(f"/proc/{child.pid}/exe") == before:
                    assert time.monotonic() < deadline, "the child never exec'd"
                    time.sleep(0.01)
                return space

        for read_all in (False, True):
            if read_all:
                child.kill()
                child.wait()
                child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)
                assert child.stdout.readline().strip() == "ready"
            result = scan_live(ExecsAfterOpen(), options=ScanOptions(skip_unchanged=not read_all))
            assert [p.status for p in result.processes] == ["exited"]
            assert result.findings == [] and result.modules == []
    finally:
        child.kill()
        child.wait()


def test_still_mapped_checks_the_live_maps(target):
    from hpforensics.live.linux import LinuxProcessSpace

    with LinuxBackend().open(ProcessInfo(target.pid, "hpf_target")) as space:
        assert isinstance(space, LinuxProcessSpace)
        (image,) = [i for i in space.images() if i.name == "hpf_target"]
        code = [r for r in space.image_regions(image) if r.executable]
        assert code and all(space.still_mapped(r) for r in code)
        assert not space.still_mapped(code[0]._replace(inode=code[0].inode + 1))


def test_cli_yara_all_scans_every_executable_mapping(target, cli, tmp_path):
    # a condition-only rule hits once per scanned slice: which mappings were scanned
    rules = tmp_path / "any.yar"
    rules.write_text("rule scanned { condition: filesize > 0 }\n")
    env = {**os.environ, "HPF_CACHE_DIR": str(tmp_path / "cache")}
    changed = cli("live", "--pid", str(target.pid), "--yara", str(rules), "-f", "json", "-q",
                  env=env, check=True)
    assert json.loads(changed.stdout)["yara"] == []  # the process is unchanged
    every = cli("live", "--pid", str(target.pid), "--yara", str(rules), "--yara-all", "-f",
                "json", "-q", env=env, check=True)
    hits = [y for y in json.loads(every.stdout)["yara"] if y["rule"] == "scanned"]
    modules = {h["module"] for h in hits}
    # the program's code, its libraries' code and the kernel-provided vDSO: every executable map
    assert {"hpf_target", "[vdso]"} <= modules and any(m.startswith("libc") for m in modules)
    assert all(h["verdict"] == "" and h["pid"] == target.pid for h in hits)
    alone = cli("live", "--pid", str(target.pid), "--yara-all", "-q")
    assert alone.returncode == 2 and "--yara-all needs --yara" in alone.stderr


def test_target_in_shared_anonymous_memory_is_named_so(target):
    """MAP_SHARED|MAP_ANONYMOUS shows in maps as "/dev/zero (deleted)": no file, no module
    "zero", no "written in place" warning for it, and the branch target is named for what it is."""
    stub = int(target.ask("s"), 16)
    with open(f"/proc/{target.pid}/maps") as fh:
        assert any(line.rstrip().endswith("/dev/zero (deleted)") and "rwxs" in line for line in fh)
    result = scan_live(select_backend(), pids=[target.pid])
    assert not [w for w in result.warnings if "written in place" in w], result.warnings
    assert not [m for m in result.modules if m.module == "zero"]
    (f,) = [f for f in result.findings if f.verdict is Verdict.UNEXPLAINED]
    assert f.address == target.func and f.branch_target == stub
    assert f.target_owner.startswith("shared anonymous memory (/dev/zero, deleted) rwxs")
    assert "shared anonymous memory" in f.reason
