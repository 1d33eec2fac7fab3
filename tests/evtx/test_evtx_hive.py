"""Hotpatch enrolment read straight from registry hives (hpforensics/evtx/hive.py): the sample
generator's hives checked by two independent readers, discovery in KAPE-style layouts, the CLI
on the sample collection, control-set resolution, damaged and dirty hives, evidence unchanged."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import random
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import pytest
from dissect.regf import RegistryHive
from regipy.registry import RegistryHive as RegipyHive

from hpforensics.errors import InputError
from hpforensics.evtx.hive import read_hive
from hpforensics.evtx.ingest import discover
from hpforensics.evtx.records import ReadStats

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
sys.path.insert(0, str(SAMPLES))
_spec = importlib.util.spec_from_file_location("build_hive", SAMPLES / "build_hive.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)  # type: ignore[union-attr]
from regf_writer import Key, filetime  # noqa: E402  (samples/ on the path, as build_hive puts it)

KAPE = SAMPLES / "kape"
CONFIG = KAPE / "HP-WS-001" / B.CONFIG
HOTPATCH = B.DYNAMIC + r"\Hotpatch.amd64"
SOFTWARE_KEY = "HKLM\\SOFTWARE\\"
MEMORY_KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _keys(root: Key, path: str = "") -> list[tuple[str, Key]]:
    out = [(path, root)]
    for sub in root.subkeys:
        out += _keys(sub, f"{path}\\{sub.name}" if path else sub.name)
    return out


def _expected(kind: int, data: bytes) -> object:
    """A value as a reader decodes it, from the bytes the generator wrote."""
    if kind in (4, 11):
        return int.from_bytes(data, "little")
    if kind == 1:
        return data.decode("utf-16-le").rstrip("\0")
    if kind == 7:
        return [s for s in data.decode("utf-16-le").split("\0") if s]
    return data


HIVES = {
    "software-lh": lambda: B.software(hotpatch_package=True),
    "software-lf": lambda: B.software(hotpatch_package=True, leaf="lf"),
    "system": lambda: B.system(),
}


@pytest.mark.parametrize("name", sorted(HIVES))
def test_two_readers_agree_with_the_generator(name: str, tmp_path: Path) -> None:
    """dissect.regf and regipy both read every key (name, subkeys in order, last write time)
    and every value (type, data) exactly as written; the base block checksum holds."""
    written = HIVES[name]()
    path = tmp_path / "hive"
    path.write_bytes(written.data)
    keys = _keys(written.root)
    assert len(keys) >= 14 and len(written.bins) >= (1 if name == "system" else 2)
    xor = 0
    for (word,) in struct.iter_unpack("<I", written.data[:508]):
        xor ^= word
    with open(path, "rb") as fh:
        dissected = RegistryHive(fh)
        regipy = RegipyHive(str(path))
        assert dissected.header.CheckSum == regipy.header.checksum == xor
        assert dissected.header.Sequence1 == dissected.header.Sequence2
        for key_path, key in keys:
            d = dissected.open(key_path)
            r = regipy.get_key("\\" + key_path) if key_path else regipy.root
            assert d.name == key.name and r.name == key.name
            assert d.timestamp == key.time
            assert r.header.last_modified == filetime(key.time)
            assert [s.name for s in d.subkeys()] == [s.name for s in key.subkeys]
            assert [s.name for s in r.iter_subkeys()] == [s.name for s in key.subkeys]
            want = [(v.name, v.type, v.data) for v in key.values]
            assert [(v.name, v.type, v.data) for v in d.values()] == want
            got = [(v.name, v.value_type, v.value) for v in r.iter_values(trim_values=False)]
            assert [(n, {1: "REG_SZ", 3: "REG_BINARY", 4: "REG_DWORD", 7: "REG_MULTI_SZ",
                         11: "REG_QWORD"}[t], _expected(t, b))
                    for n, t, b in want] == got


def test_the_committed_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    B.build(tmp_path)
    built = tmp_path / "HP-WS-001" / B.CONFIG
    names = sorted(p.name for p in CONFIG.iterdir())
    assert names == ["SOFTWARE", "SOFTWARE.LOG1", "SOFTWARE.LOG2", "SYSTEM", "SYSTEM.LOG1",
                     "SYSTEM.LOG2"]
    assert all((built / n).read_bytes() == (CONFIG / n).read_bytes() for n in names)


def _kape_tree(root: Path, host: str) -> Path:
    """A KAPE-style collection of `host`: both hives with their logs, the other hives, a
    RegBack copy, a user hive and one event log."""
    config = B.build(root, host)
    for other in ("SAM", "SECURITY", "DEFAULT"):
        shutil.copy(config / "SYSTEM", config / other)
    (config / "RegBack").mkdir()
    shutil.copy(config / "SOFTWARE", config / "RegBack" / "SOFTWARE")
    user = root / host / "C" / "Users" / "ana"
    user.mkdir(parents=True)
    shutil.copy(config / "SOFTWARE", user / "NTUSER.DAT")
    logs = root / host / "C" / "Windows" / "System32" / "winevt" / "Logs"
    logs.mkdir(parents=True)
    shutil.copy(SAMPLES / "evtx" / "HP-WS-001" / "C" / "Windows" / "System32" / "winevt" / "Logs"
                / "Setup.evtx", logs / "Setup.evtx")
    return config


def test_discovery_in_a_folder_and_a_zip(tmp_path: Path) -> None:
    _kape_tree(tmp_path / "tree", "SRV-07")
    found = [(Path(i.source).relative_to(tmp_path / "tree").as_posix(), i.kind, i.device_hint)
             for i in discover([tmp_path / "tree"])]
    assert found == [
        ("SRV-07/C/Windows/System32/config/SOFTWARE", "registry", "SRV-07"),
        ("SRV-07/C/Windows/System32/config/SYSTEM", "registry", "SRV-07"),
        ("SRV-07/C/Windows/System32/winevt/Logs/Setup.evtx", "evtx", "SRV-07")]
    # a zip of the collection (the host folder inside), and one whose members start at the drive
    archive = tmp_path / "zips" / "SRV-07.zip"
    bare = tmp_path / "zips" / "SRV-08_2026-05-20T090000.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf, zipfile.ZipFile(bare, "w") as bz:
        for f in sorted((tmp_path / "tree").rglob("*")):
            if f.is_file():
                rel = f.relative_to(tmp_path / "tree").as_posix()
                zf.write(f, rel)
                bz.write(f, rel.split("/", 1)[1].replace("/", "\\"))  # Windows separators
    found = [(i.member, i.kind, i.device_hint) for i in discover([tmp_path / "zips"])]
    assert found == [
        ("SRV-07/C/Windows/System32/config/SOFTWARE", "registry", "SRV-07"),
        ("SRV-07/C/Windows/System32/config/SYSTEM", "registry", "SRV-07"),
        ("SRV-07/C/Windows/System32/winevt/Logs/Setup.evtx", "evtx", "SRV-07"),
        ("C\\Windows\\System32\\config\\SOFTWARE", "registry", "SRV-08"),
        ("C\\Windows\\System32\\config\\SYSTEM", "registry", "SRV-08"),
        ("C\\Windows\\System32\\winevt\\Logs\\Setup.evtx", "evtx", "SRV-08")]


def test_a_hive_given_by_itself_is_sniffed(tmp_path: Path) -> None:
    """Any name: told by its regf signature and file type (a .LOG1 is not a primary file); the
    device is the folder holding it, as for a `.reg` file."""
    copy = tmp_path / "WS-09" / "software-copy.hiv"
    copy.parent.mkdir()
    shutil.copy(CONFIG / "SOFTWARE", copy)
    (item,) = discover([copy])
    assert (item.kind, item.device_hint) == ("registry", "WS-09")
    with pytest.raises(InputError, match="registry hive"):
        discover([CONFIG / "SOFTWARE.LOG1"])


def test_timeline_on_the_kape_sample(cli, tmp_path: Path) -> None:
    """The hives alone make the device enrolled; each event names the value, at its key's last
    write time, with the cell's file offset as record ID; the set Select\\Current names."""
    out = tmp_path / "out"
    proc = cli("timeline", KAPE, "-o", out, "--no-html")
    assert proc.returncode == 0, proc.stderr
    (device,) = _rows(out / "devices.csv")
    assert (device["device"], device["hotpatch_enrolment"]) == ("HP-WS-001", "true")
    software, system = B.software(), B.system()
    events = [(r["time"], r["category"], r["record_id"], Path(r["source"]).name, r["detail"])
              for r in _rows(out / "events.csv")]
    assert events == [
        ("2025-02-01T07:18:00.000000Z", "hotpatch-enrolment",
         str(software.values[(B.UPDATE, "AllowRebootlessUpdates")]), "SOFTWARE",
         SOFTWARE_KEY + B.UPDATE + r"\AllowRebootlessUpdates = 1 (REG_DWORD)"),
        ("2025-02-01T07:20:00.000000Z", "hotpatch-enrolment",
         str(system.values[("ControlSet002\\" + B.MEMORY, "HotPatchTableSize")]), "SYSTEM",
         MEMORY_KEY + r"\HotPatchTableSize = 4096 (REG_DWORD) [ControlSet002 = Select\Current]")]
    inputs = _rows(out / "inputs.csv")
    assert [(Path(r["source"]).name, r["records"], r["warnings"]) for r in inputs] == [
        ("SOFTWARE", "1", ""), ("SYSTEM", "1", "")]
    assert {r["sha256"] for r in inputs} == {
        hashlib.sha256((CONFIG / n).read_bytes()).hexdigest() for n in ("SOFTWARE", "SYSTEM")}
    # the same collection zipped (a hive with a zeroed base block is still told by its name)
    archive = tmp_path / "HP-WS-001.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(KAPE.rglob("*")):
            if f.is_file():
                data = f.read_bytes()
                zf.writestr(f.relative_to(KAPE).as_posix(),
                            bytes(4096) + data[4096:] if f.name == "SYSTEM" else data)
    zipped = cli("timeline", archive, "-o", tmp_path / "zip", "--no-html", "--no-hash")
    assert zipped.returncode == 3, zipped.stderr
    assert (f"{archive}!HP-WS-001/C/Windows/System32/config/SYSTEM at offset 0x0: no regf "
            "signature") in zipped.stderr
    assert [(r["time"], r["record_id"], r["source"].rsplit("!", 1)[1], r["detail"])
            for r in _rows(tmp_path / "zip" / "events.csv")] == [
        (t, rid, f"HP-WS-001/C/Windows/System32/config/{name}", detail)
        for t, _, rid, name, detail in events]
    # beside the device's event logs: one device, its log evidence and the hives' together
    both = cli("timeline", KAPE, SAMPLES / "evtx" / "HP-WS-001", "-o", tmp_path / "both",
               "--no-html", "--no-hash")
    assert both.returncode == 0, both.stderr
    (device,) = _rows(tmp_path / "both" / "devices.csv")
    assert device["device"] == "HP-WS-001" and int(device["events"]) > 2
    assert sum(r["channel"] == "Registry" for r in _rows(tmp_path / "both" / "events.csv")) == 2


def _device(root: Path, host: str, software: bytes | None = None,
            system: bytes | None = None) -> Path:
    config = root / host / B.CONFIG
    config.mkdir(parents=True)
    if software is not None:
        (config / "SOFTWARE").write_bytes(software)
    if system is not None:
        (config / "SYSTEM").write_bytes(system)
    return config


def test_policy_off_server_package_and_control_sets(cli, tmp_path: Path) -> None:
    """AllowRebootlessUpdates = 0 is not-enrolled; a server's Hotpatch.* package key and its
    values; Select\\Current = 1 reads ControlSet001 (the other set's value never shows)."""
    _device(tmp_path, "OFF-01", B.software(allow=0).data, B.system(table_size=0).data)
    srv = B.software(allow=None, hotpatch_package=True)
    _device(tmp_path, "SRV-01", srv.data, B.system(current=1, table_size=0x2000,
                                                   other=0x800).data)
    out = tmp_path / "out"
    proc = cli("timeline", tmp_path, "-o", out, "--no-html", "--no-hash")
    assert proc.returncode == 0, proc.stderr
    assert {r["device"]: r["hotpatch_enrolment"] for r in _rows(out / "devices.csv")} == {
        "OFF-01": "false", "SRV-01": "true"}
    events = [(r["device"], r["category"], r["time"], r["detail"].replace(SOFTWARE_KEY + B.UPDATE,
                                                                         "U"))
              for r in _rows(out / "events.csv")]
    assert events == [
        ("OFF-01", "hotpatch-not-enrolled", "2025-02-01T07:18:00.000000Z",
         r"U\AllowRebootlessUpdates = 0 (REG_DWORD)"),
        ("SRV-01", "hotpatch-enrolment", "2025-02-01T07:18:00.000000Z",
         r"key U\TargetingInfo\DynamicInstalled\Hotpatch.amd64"),
        ("SRV-01", "hotpatch-enrolment", "2025-02-01T07:20:00.000000Z",
         MEMORY_KEY + r"\HotPatchTableSize = 8192 (REG_DWORD) [ControlSet001 = Select\Current]")]
    stats = ReadStats("x")
    package = [(r.data["name"], r.data["type"], r.data["value"], r.record_id)
               for r in read_hive(str(tmp_path / "SRV-01" / B.CONFIG / "SOFTWARE"), stats)]
    assert package == [
        ("", "key", "", srv.keys[HOTPATCH]),
        ("Name", "REG_SZ", "Hotpatch Enrollment Package", srv.values[(HOTPATCH, "Name")]),
        ("Version", "REG_SZ", "10.0.26100.1742", srv.values[(HOTPATCH, "Version")]),
        ("Owners", "REG_MULTI_SZ", "Hotpatch", srv.values[(HOTPATCH, "Owners")])]


def _damaged() -> dict[str, tuple[bytes, str]]:
    """Damaged copies of a server SOFTWARE hive and the warning each must give."""
    good = B.software(hotpatch_package=True)
    cut = good.keys[HOTPATCH] + 8  # inside the first bin, before the Hotpatch.* key's cell
    zeroed = bytes(4096) + good.data[4096:]
    flipped = bytearray(good.data)
    flipped[508] ^= 0x01
    stored = struct.unpack_from("<I", flipped, 508)[0]
    return {
        "TRUNC": (good.data[:cut], f"at offset 0x1000: hive bin of 0x1000 bytes cut short: the "
                                   f"file ends at {cut:#x} (1 more problem)"),
        "ZERO": (zeroed, "at offset 0x0: no regf signature (b'\\x00\\x00\\x00\\x00'): base block "
                         "damaged, rebuilt from the first hive bin"),
        "CSUM": (bytes(flipped), f"at offset 0x1fc: base block checksum {stored:#010x} does not "
                                 f"match its contents ({stored ^ 1:#010x}); read as is"),
    }


def test_damaged_hives_warn_once_and_keep_what_was_read(cli, tmp_path: Path) -> None:
    cases = _damaged()
    hashes = {}
    for host, (data, _) in cases.items():
        config = _device(tmp_path, host, data)
        os.chmod(config / "SOFTWARE", 0o444)
        hashes[host] = hashlib.sha256(data).hexdigest()
    out = tmp_path / "out"
    proc = cli("timeline", tmp_path, "-o", out, "--no-html")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    kept = "; the values that could be read were kept"
    want = {host: str(tmp_path / host / B.CONFIG / "SOFTWARE") + " " + reason + kept
            for host, (_, reason) in cases.items()}
    warned = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert sorted(warned) == sorted(f"hpforensics: warning: {w}" for w in want.values())
    assert {r["device_hint"]: r["warnings"] for r in _rows(out / "inputs.csv")} == want
    events: dict[str, list[str]] = {}
    for r in _rows(out / "events.csv"):
        events.setdefault(r["device"], []).append(r["detail"].rsplit("\\", 1)[1])
    every = ["AllowRebootlessUpdates = 1 (REG_DWORD)", "Hotpatch.amd64"]
    assert events == {"TRUNC": every[:1], "ZERO": every, "CSUM": every}
    for host, digest in hashes.items():  # evidence never written to
        path = tmp_path / host / B.CONFIG / "SOFTWARE"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert path.stat().st_mode & 0o777 == 0o444


def test_bad_bin_dirty_hive_and_a_stub(tmp_path: Path) -> None:
    good = B.software(hotpatch_package=True)
    bad_bin = bytearray(good.data)
    second = good.bins[1][0]
    bad_bin[second:second + 4] = b"hbix"
    dirty = B.software(sequence=(42, 41)).data
    cases = {"bad-bin": bytes(bad_bin), "dirty": dirty, "stub": good.data[:3000]}
    got = {}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        stats = ReadStats(name)
        records = list(read_hive(str(path), stats))
        got[name] = (len(records), stats.warnings)
    assert got == {
        "bad-bin": (5, [f"bad-bin at offset {second:#x}: not a hive bin header (b'hbix', size "
                        "0x1000); reading on 4 KiB further; the values that could be read were "
                        "kept"]),
        "dirty": (1, ["dirty at offset 0x4: dirty hive (sequence numbers 42 and 41 differ): its "
                      "transaction logs (.LOG1/.LOG2) were not replayed, changes not yet written "
                      "to the file are missing; the values that could be read were kept"]),
        "stub": (0, ["stub at offset 0xbb8: the file ends at 0xbb8, before the first hive bin: "
                     "not enough of a hive to read; nothing was read"]),
    }


def test_random_damage_never_raises(tmp_path: Path) -> None:
    """400 random mutations (bytes, cell sizes and offsets, truncation) of both hives: no
    exception, bounded time."""
    import time

    rng = random.Random(7)
    sources = (B.software(hotpatch_package=True).data, B.system().data)
    path = tmp_path / "hive"
    worst = 0.0
    for n in range(400):
        data = bytearray(sources[n % 2])
        for _ in range(rng.randint(1, 16)):
            at = rng.randrange(len(data) - 4)
            if rng.random() < 0.6:
                data[at] = rng.randrange(256)
            else:
                data[at:at + 4] = rng.choice((b"\xff\xff\xff\xff", b"\0\0\0\0", b"\0\x10\0\0",
                                              b"\xf8\xff\xff\xff"))
        if rng.random() < 0.2:
            del data[rng.randrange(len(data)):]
        path.write_bytes(data)
        start = time.perf_counter()
        list(read_hive(str(path), ReadStats("h")))
        worst = max(worst, time.perf_counter() - start)
    assert worst < 5.0  # a hang or a runaway loop, not speed (bench/ measures speed)
