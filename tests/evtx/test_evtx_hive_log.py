"""A dirty hive's transaction logs replayed before it is read (hpforensics/evtx/hive_log.py,
marvin32.py): Marvin32 against the published vectors; the generator's dirty SOFTWARE hive with
its .LOG1/.LOG2 (entries across both logs, stale entries after each, the hive growing a bin)
replayed to what the logs hold, checked by dissect.regf and regipy; the evidence untouched;
stale, older and corrupted entries; logs inside a zipped collection; the CLI end to end."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import struct
import sys
import zipfile
from pathlib import Path

import pytest
from dissect.regf import RegistryHive
from regipy.registry import RegistryHive as RegipyHive

from hpforensics.evtx.hive import read_hive
from hpforensics.evtx.hive_file import xor32
from hpforensics.evtx.hive_log import logs_beside, replay
from hpforensics.evtx.marvin32 import REGISTRY_SEED, marvin32
from hpforensics.evtx.records import ReadStats

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
sys.path.insert(0, str(SAMPLES))
_spec = importlib.util.spec_from_file_location("build_hive_log", SAMPLES / "build_hive.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)  # type: ignore[union-attr]
from regf_writer import filetime, old_log_file  # noqa: E402  (samples/ on the path)

UPDATE_KEY = "HKLM\\SOFTWARE\\" + B.UPDATE
ALLOW = UPDATE_KEY + r"\AllowRebootlessUpdates"
NOTE = "[1 log entry applied from SOFTWARE.LOG2, 1 from SOFTWARE.LOG1]"
KEPT = "; the values that could be read were kept"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {f.name: (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mode & 0o777)
            for f in folder.iterdir()}


# Microsoft's published Marvin32 vectors (.NET runtime, src/libraries/Common/tests/Tests/System/
# MarvinTests.cs; the same in SymCrypt): seed 0x004FB61A001BDBCC, 0 to 7 bytes (every tail).
VECTORS = [("", 0x30ED35C100CD3C7D), ("af", 0x48E73FC77D75DDC1), ("e70f", 0xB5F6E1FC485DBFF8),
           ("37f495", 0xF0B07C789B8CF7E8), ("8642dc59", 0x7008F2E87E9CF556),
           ("153fb79826", 0xE6C08C6DA2AFA997), ("0932e6246c47", 0x6F04BF1A5EA24060),
           ("ab427ea8d10fc7", 0xE11847E4F0678C41)]


@pytest.mark.parametrize("data,want", VECTORS)
def test_marvin32_published_vectors(data: str, want: int) -> None:
    assert marvin32(bytes.fromhex(data), 0x004FB61A001BDBCC) == want
    assert marvin32(bytearray.fromhex(data), 0x804FB61A001BDBCC) != want  # the seed matters


def test_the_generated_entries_carry_the_registry_hashes() -> None:
    """Each generated entry's hash-2 is the Marvin32 (seed 0x82EF4D887A4E55C5) of its first 32
    bytes and hash-1 of everything after its 40-byte header."""
    dirty = B.dirty_software()
    assert REGISTRY_SEED == 0x82EF4D887A4E55C5
    for data in (dirty.log1, dirty.log2):
        at, seen = 512, 0
        while at + 40 <= len(data):
            sig, size, _, _, _, _, hash1, hash2 = struct.unpack_from("<4sIIIIIQQ", data, at)
            assert sig == b"HvLE" and size % 512 == 0
            assert marvin32(data[at:at + 32]) == hash2
            assert marvin32(data[at + 40:at + size]) == hash1
            at, seen = at + size, seen + 1
        assert (at, seen) == (len(data), 2)


def _replayed(dirty) -> object:
    return replay(dirty.disk.data, [("SOFTWARE.LOG1", dirty.log1), ("SOFTWARE.LOG2", dirty.log2)])


def test_replay_gives_what_the_logs_hold(tmp_path: Path) -> None:
    """Entry 41 (.LOG2) then 42 (.LOG1), whichever log is named first; the stale entries 39 and
    40 after them (which would put the disk's pages back) are not applied; the hive grows a bin;
    the base block is clean. dissect.regf and regipy both read the recovered image."""
    dirty = B.dirty_software()
    result = _replayed(dirty)
    assert result.applied == [("SOFTWARE.LOG2", 1), ("SOFTWARE.LOG1", 1)]
    assert result.problem is None and result.note() == NOTE[1:-1]
    image = bytes(result.image)
    assert len(dirty.disk.data) == 16384 and len(image) == len(dirty.final.data) == 20480
    assert image[4096:] == dirty.final.data[4096:]
    assert image[4096:] != dirty.disk.data[4096:]  # (the stale entries would restore these)
    seq1, seq2 = struct.unpack_from("<II", image, 4)
    assert (seq1, seq2) == (42, 42)
    assert struct.unpack_from("<I", image, 40)[0] == 16384
    assert struct.unpack_from("<I", image, 508)[0] == xor32(image)
    reverse = replay(dirty.disk.data, [("SOFTWARE.LOG2", dirty.log2),
                                       ("SOFTWARE.LOG1", dirty.log1)])
    assert bytes(reverse.image) == image
    copy = tmp_path / "recovered"
    copy.write_bytes(image)
    with open(copy, "rb") as fh:
        hive = RegistryHive(fh)
        assert hive.header.Sequence1 == hive.header.Sequence2 == 42
        update = hive.open(B.UPDATE)
        assert update.value("AllowRebootlessUpdates").value == 1
        assert update.value("ConfigureDeadlineForQualityUpdates").value == 3
        assert update.timestamp == B.REPLAYED
        assert [k.name for k in hive.open(B.DYNAMIC).subkeys()] == ["Client.OS.rs2.amd64",
                                                                   "Hotpatch.amd64"]
        packages = hive.open(r"Microsoft\Windows\CurrentVersion\Component Based Servicing"
                             r"\Packages")
        assert len(list(packages.subkeys())) == len(B.NEWER_UPDATES) == 18
    regipy = RegipyHive(str(copy))
    assert regipy.header.primary_sequence_num == regipy.header.secondary_sequence_num == 42
    key = regipy.get_key("\\" + B.UPDATE)
    assert {v.name: v.value for v in key.iter_values()}["AllowRebootlessUpdates"] == 1
    assert key.header.last_modified == filetime(B.REPLAYED)


def test_read_hive_replays_and_leaves_the_evidence_alone(tmp_path: Path) -> None:
    """No warning, the logged values at the logged time (record IDs = the recovered cells),
    each record saying what was applied; every file byte-identical, read-only modes kept, no
    file created beside the hive."""
    config = B.build_dirty(tmp_path)
    for f in config.iterdir():
        os.chmod(f, 0o444)
    before = _snapshot(config)
    stats = ReadStats(str(config / "SOFTWARE"))
    records = list(read_hive(str(config / "SOFTWARE"), stats))
    final = B.dirty_software().final
    assert stats.warnings == []
    got = [(r.record_id, r.time, r.message) for r in records][:2]
    assert got == [
        (final.values[(B.UPDATE, "AllowRebootlessUpdates")], B.REPLAYED,
         f"{ALLOW} = 1 (REG_DWORD) {NOTE}"),
        (final.keys[B.DYNAMIC + r"\Hotpatch.amd64"], B.REPLAYED,
         f"key {UPDATE_KEY}\\TargetingInfo\\DynamicInstalled\\Hotpatch.amd64 {NOTE}")]
    assert _snapshot(config) == before
    assert [Path(p).name for p in logs_beside(str(config / "SOFTWARE"))] == [
        "SOFTWARE.LOG1", "SOFTWARE.LOG2"]


def _read(path: Path) -> tuple[list[tuple[str, object]], list[str]]:
    stats = ReadStats(str(path))
    records = [(r.message.split(" [")[0].rsplit("\\", 1)[1], r.time)
               for r in read_hive(str(path), stats)]
    return records, stats.warnings


def test_logs_that_cannot_apply_keep_the_hive_as_it_is(tmp_path: Path) -> None:
    """Logs older than the hive (its secondary sequence number 43), empty logs, no logs: the
    values on disk with today's dirty warning, saying why the logs were not replayed."""
    dirty = B.dirty_software()
    cases = {
        "older": (B.software(allow=0, sequence=(44, 43)).data, dirty.log1, dirty.log2),
        "empty": (dirty.disk.data, b"", b""),
        "none": (dirty.disk.data, None, None),
    }
    got = {}
    for name, (hive, log1, log2) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "SOFTWARE").write_bytes(hive)
        for suffix, data in ((".LOG1", log1), (".LOG2", log2)):
            if data is not None:
                (folder / ("SOFTWARE" + suffix)).write_bytes(data)
        got[name] = _read(folder / "SOFTWARE")
    on_disk = [("AllowRebootlessUpdates = 0 (REG_DWORD)", B.ENROLLED)]
    dirty_msg = "at offset 0x4: dirty hive (sequence numbers {} differ): its transaction logs " \
                "(.LOG1/.LOG2) were not replayed{}, changes not yet written to the file are " \
                "missing" + KEPT
    assert got == {
        "older": (on_disk, [f"{tmp_path}/older/SOFTWARE " + dirty_msg.format(
            "44 and 43", " (SOFTWARE.LOG2: its entries (41...) are older than the hive's (43); "
                         "SOFTWARE.LOG1: its entries (42...) are older than the hive's (43))")]),
        "empty": (on_disk, [f"{tmp_path}/empty/SOFTWARE " + dirty_msg.format(
            "42 and 41", " (SOFTWARE.LOG1: empty; SOFTWARE.LOG2: empty)")]),
        "none": (on_disk, [f"{tmp_path}/none/SOFTWARE " + dirty_msg.format("42 and 41", "")]),
    }


def test_a_corrupted_entry_stops_the_replay_there(tmp_path: Path) -> None:
    """A byte flipped in a dirty page of entry 42 (.LOG1 at 0x200): hash-1 fails, entry 41 is
    kept (deadline 3) but not the policy; flipped in the header of entry 41 (.LOG2 at 0x200):
    hash-2 fails, nothing applied, the disk's values. One warning each, naming the log."""
    dirty = B.dirty_software()
    page = bytearray(dirty.log1)
    page[512 + 40 + 8 * 4 + 100] ^= 0x40  # inside the first dirty page
    header = bytearray(dirty.log2)
    header[512 + 8] ^= 0x01  # the entry's flags field
    got = {}
    for name, log1, log2 in (("page", bytes(page), dirty.log2),
                             ("header", dirty.log1, bytes(header))):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "SOFTWARE").write_bytes(dirty.disk.data)
        (folder / "SOFTWARE.LOG1").write_bytes(log1)
        (folder / "SOFTWARE.LOG2").write_bytes(log2)
        got[name] = _read(folder / "SOFTWARE")
    src = f"{tmp_path}/{{}}/SOFTWARE"
    assert got == {
        "page": ([("AllowRebootlessUpdates = 0 (REG_DWORD)", B.ENROLLED)], [
            src.format("page") + ".LOG1 at offset 0x200: log entry pages do not match their "
                                 "hash-1 (Marvin32): replay stopped here" + KEPT]),
        "header": ([("AllowRebootlessUpdates = 0 (REG_DWORD)", B.ENROLLED)], [
            src.format("header") + ".LOG2 at offset 0x200: log entry header does not match its "
                                   "hash-2 (Marvin32): replay stopped here (1 more problem)"
            + KEPT]),
    }
    # the page case did apply entry 41: its change is in the image read
    result = replay(dirty.disk.data, [("SOFTWARE.LOG1", bytes(page)),
                                      ("SOFTWARE.LOG2", dirty.log2)])
    assert result.applied == [("SOFTWARE.LOG2", 1)] and result.problem[:2] == ("SOFTWARE.LOG1",
                                                                                0x200)
    assert bytes(result.image[4096:]) == dirty.middle.data[4096:]


def test_cli_replays_in_a_folder_and_in_a_zip(cli, tmp_path: Path) -> None:
    """The device is enrolled only because of what the logs hold: exit 0, no warning; the same
    collection zipped (the logs travel with the hive's temporary copy); without its logs the
    hive is read as on disk (not enrolled, exit 3)."""
    tree = tmp_path / "tree"
    config = B.build_dirty(tree)
    final = B.dirty_software().final
    want = ("HP-WS-002", "2026-05-20T08:40:00.000000Z", "hotpatch-enrolment",
            str(final.values[(B.UPDATE, "AllowRebootlessUpdates")]),
            f"{ALLOW} = 1 (REG_DWORD) {NOTE}")
    archive = tmp_path / "HP-WS-002.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(tree.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(tree).as_posix())
    for name, source in (("folder", tree), ("zip", archive)):
        out = tmp_path / name
        proc = cli("timeline", source, "-o", out, "--no-html")
        assert proc.returncode == 0, proc.stderr
        assert "warning" not in proc.stderr
        (device,) = _rows(out / "devices.csv")
        assert (device["device"], device["hotpatch_enrolment"]) == ("HP-WS-002", "true")
        events = [(r["device"], r["time"], r["category"], r["record_id"], r["detail"])
                  for r in _rows(out / "events.csv") if "AllowRebootless" in r["detail"]]
        assert events == [want]
        assert all(r["warnings"] == "" for r in _rows(out / "inputs.csv"))
    assert sorted(p.name for p in config.iterdir()) == ["SOFTWARE", "SOFTWARE.LOG1",
                                                        "SOFTWARE.LOG2", "SYSTEM"]
    (config / "SOFTWARE.LOG1").unlink()
    (config / "SOFTWARE.LOG2").unlink()
    proc = cli("timeline", tree, "-o", tmp_path / "nologs", "--no-html", "--no-hash")
    assert proc.returncode == 3, proc.stderr
    assert f"{config / 'SOFTWARE'} at offset 0x4: dirty hive" in proc.stderr
    (device,) = _rows(tmp_path / "nologs" / "devices.csv")
    assert device["hotpatch_enrolment"] == "true"  # SYSTEM's HotPatchTableSize still says so
    assert [r["category"] for r in _rows(tmp_path / "nologs" / "events.csv")
            if "AllowRebootless" in r["detail"]] == ["hotpatch-not-enrolled"]


def test_an_old_format_log_is_replayed(tmp_path: Path) -> None:
    """Windows XP-8 logs: the dirty vector's 512-byte pages over the hive (it grows to the
    log's hive bins data size); a log older than the hive's last write is not used; one cut
    short stops with a warning naming it."""
    dirty = B.dirty_software()
    disk, final = dirty.disk.data, dirty.final.data
    pages = [(at - 4096, final[at:at + 512]) for at in range(4096, len(final), 512)
             if disk[at:at + 512] != final[at:at + 512]]
    name = r"\SystemRoot\System32\Config\SOFTWARE"
    log1 = old_log_file(name, B.COLLECTED, 42, len(final) - 4096, pages,
                        root=dirty.final.keys[""] - 4096)
    result = replay(disk, [("SOFTWARE.LOG1", log1), ("SOFTWARE.LOG2", b"")])
    assert result.note() == f"{len(pages)} dirty pages applied from SOFTWARE.LOG1 (old format)"
    assert 8 < len(pages) < 40 and bytes(result.image[4096:]) == final[4096:]
    stale = old_log_file(name, B.ENROLLED, 42, len(final) - 4096, pages)
    got = {}
    for case, log in (("old", log1), ("stale", stale), ("cut", log1[:-512])):
        folder = tmp_path / case
        folder.mkdir()
        (folder / "SOFTWARE").write_bytes(disk)
        (folder / "SOFTWARE.LOG1").write_bytes(log)
        stats = ReadStats(case)
        records = list(read_hive(str(folder / "SOFTWARE"), stats))
        got[case] = (records[0].message, records[0].time, stats.warnings)
    dirty_msg = "at offset 0x4: dirty hive (sequence numbers 42 and 41 differ): its transaction " \
                "logs (.LOG1/.LOG2) were not replayed ({}), changes not yet written to the " \
                "file are missing"
    on_disk = (f"{ALLOW} = 0 (REG_DWORD)", B.ENROLLED)
    assert got == {
        "old": (f"{ALLOW} = 1 (REG_DWORD) [{result.note()}]", B.REPLAYED, []),
        "stale": (*on_disk, ["stale " + dirty_msg.format(
            "SOFTWARE.LOG1: older than the hive (last written time)") + KEPT]),
        "cut": (*on_disk, [f"cut.LOG1 at offset 0x400: {len(pages)} dirty pages named, the log "
                           f"ends at {len(log1) - 512:#x}: replay stopped here (1 more problem)"
                           + KEPT]),
    }


def _rehash(entry: bytearray) -> None:
    from hpforensics.evtx.marvin32 import marvin32

    size = struct.unpack_from("<I", entry, 4)[0]
    struct.pack_into("<Q", entry, 24, marvin32(entry[40:size]))
    struct.pack_into("<Q", entry, 32, marvin32(entry[:32]))


def test_hostile_logs_never_raise_nor_balloon(tmp_path: Path) -> None:
    """Random damage to the logs, and entries whose fields are set to extremes with their
    hashes recomputed (a forged log): no exception, the image never beyond the hive plus the
    pages the logs carry; a forged hive bins size of 4 GiB is refused with a warning."""
    import random

    dirty = B.dirty_software()
    rng = random.Random(11)
    limit = len(dirty.disk.data) + len(dirty.log1) + len(dirty.log2)
    fields = (4, 16, 20, 40, 44, 48)  # size, bins size, page count, first page reference
    for n in range(300):
        logs = [bytearray(dirty.log1), bytearray(dirty.log2)]
        log = logs[n % 2]
        if n % 3:
            for _ in range(rng.randint(1, 8)):
                log[rng.randrange(len(log))] = rng.randrange(256)
        else:
            struct.pack_into("<I", log, 512 + rng.choice(fields),
                             rng.choice((0, 1, 0x200, 0x1000, 0x7FFFF000, 0xFFFFFFFF)))
            entry = log[512:]
            _rehash(entry)
            log[512:] = entry
        result = replay(dirty.disk.data, [("SOFTWARE.LOG1", bytes(logs[0])),
                                          ("SOFTWARE.LOG2", bytes(logs[1]))])
        assert result.image is None or len(result.image) <= limit
    forged = bytearray(dirty.log1)
    struct.pack_into("<I", forged, 512 + 16, 0xFFFFF000)
    entry = forged[512:]
    _rehash(entry)
    forged[512:] = entry
    result = replay(dirty.disk.data, [("SOFTWARE.LOG1", bytes(forged)),
                                      ("SOFTWARE.LOG2", dirty.log2)])
    assert result.applied == [("SOFTWARE.LOG2", 1)]
    assert result.problem == ("SOFTWARE.LOG1", 0x200, "log entry grows the hive by 0xffffc000 "
                              "bytes but carries 0x4000 bytes of pages")
