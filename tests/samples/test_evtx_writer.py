"""The EVTX writer and the sample fleet: both public parsers must read every record the same.

Checks the committed samples/evtx against a fresh regeneration (byte for byte), the file and
chunk structures against the published format (checksums, record numbers, string-table hashes
as Windows computes them on a real log), and the evidence records of fleet-plan.json.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import struct
import sys
import uuid
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import Evtx.Evtx as PyEvtx
import pytest
from evtx import PyEvtxParser

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
sys.path.insert(0, str(SAMPLES))

import build_evtx  # noqa: E402
from evtx_writer import (  # noqa: E402
    Event, EvtxWriter, UserData, boolean, build, filetime, guid, hex32, hex64, i32,
    i64, name_hash, null, sid, systemtime, to_xml, u8, u16, u32, u64,
)

COMMITTED = SAMPLES / "evtx"
UTC = dt.timezone.utc
_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12})\}?$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)?$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")


def _norm(text: str | None, tag: str, b64: bool) -> str:
    """One spelling for values the two parsers print differently (GUID case and braces,
    time separators, hex zero-padding, bool case, Binary as hex vs base64)."""
    t = (text or "").strip()
    if tag == "Binary" and b64 and t:
        return base64.b64decode(t).hex().upper()
    if m := _GUID.match(t):
        return m.group(1).upper()
    if _TIME.match(t):
        v = dt.datetime.fromisoformat(t.replace("Z", "").replace("+00:00", "").replace(" ", "T"))
        # python-evtx converts FILETIME through a float and can be 1 us off: compare in ms.
        ms = round(v.microsecond / 1000)
        return (v.replace(microsecond=0) + dt.timedelta(milliseconds=ms)).isoformat()
    if _HEX.match(t):
        return hex(int(t, 16))
    return {"True": "true", "False": "false"}.get(t, t)


def canon(xml: str, b64: bool = False) -> list:
    xml = re.sub(r"^<\?xml[^>]*\?>", "", xml.strip())
    out = []
    for el in ET.fromstring(xml).iter():
        tag = el.tag.split("}")[-1]
        attrs = tuple(sorted((k, _norm(v, k, False)) for k, v in el.attrib.items()))
        out.append((tag, attrs, _norm(el.text, tag, b64)))
    return out


def read_both(path: Path) -> tuple[list[dict], list[str]]:
    rust = list(PyEvtxParser(str(path)).records())
    with PyEvtx.Evtx(str(path)) as f:
        py = [r.xml() for r in f.records()]
    return rust, py


# -- the writer on its own -----------------------------------------------------------------
def _typed_events(n: int) -> list[Event]:
    t0 = dt.datetime(2025, 3, 11, 18, 30, 0, tzinfo=UTC)
    evs = []
    for i in range(n):
        t = t0 + dt.timedelta(seconds=37 * i, milliseconds=i % 1000)
        kind = i % 3
        if kind == 0:
            evs.append(Event("Test-Provider", 100 + i % 5, t, "HOST-É", "Application",
                             provider_guid=uuid.UUID(int=i + 1), version=2, level=i % 5,
                             task=7, opcode=1, keywords=0x8000000000000000 | i,
                             process_id=4 * i, thread_id=8 * i, user_id="S-1-5-21-1-2-3-1001",
                             activity_id=uuid.UUID(int=(i * 7919) << 64),
                             data={"text": f"value {i} <&> \"q\" " + "x" * (i % 200),
                                   "u8": u8(i % 256), "u16": u16(i % 65536), "u32": u32(i * 1000),
                                   "u64": u64(i << 40), "i32": i32(-i), "i64": i64(-(i << 35)),
                                   "hex32": hex32(0x80240000 + i), "hex64": hex64(i << 33),
                                   "guid": guid(uuid.UUID(int=i * 31337)), "when": filetime(t),
                                   "st": systemtime(t.replace(microsecond=0)),
                                   "sid": sid("S-1-5-18"), "flag": boolean(i % 2 == 0),
                                   "empty": "", "nothing": null()}))
        elif kind == 1:
            evs.append(Event("EventLog", 6005, t, "HOST-É", "System", classic=True,
                             qualifiers=32768, keywords=0x80000000000000, data=["", str(i)],
                             binary=bytes(range(i % 40))))
        else:
            evs.append(Event("Microsoft-Windows-Servicing", 2, t, "HOST-É", "Setup",
                             provider_guid="BD12F3B8-FC40-4A61-A307-B7A013A069C1", task=1,
                             user_data=UserData("CbsPackageChangeState", "urn:test:ns",
                                                {"PackageIdentifier": f"KB{5000000 + i}",
                                                 "ErrorCode": hex32(0)})))
    return evs


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[Event]]:
    evs = _typed_events(800)  # four chunks
    path = tmp_path_factory.mktemp("w") / "typed.evtx"
    with EvtxWriter(path, first_record_id=500) as w:
        for e in evs:
            w.add(e)
    return path, evs


def test_file_and_chunk_structure(written):
    path, evs = written
    data = path.read_bytes()
    assert data[:8] == b"ElfFile\x00"
    first_chunk, last_chunk, next_rid, hsize, minor, major, block, nchunks = struct.unpack_from(
        "<QQQIHHHH", data, 8)
    assert (hsize, major, minor, block) == (0x80, 3, 2, 0x1000)
    assert struct.unpack_from("<I", data, 0x7C)[0] == zlib.crc32(data[:0x78])
    assert nchunks >= 3 and last_chunk == nchunks - 1 and first_chunk == 0
    assert len(data) == 0x1000 + nchunks * 0x10000
    assert next_rid == 500 + len(evs)
    expect_id = 500
    for c in range(nchunks):
        ch = data[0x1000 + c * 0x10000:0x1000 + (c + 1) * 0x10000]
        (magic, fnum, lnum, fid, lid, hs, last_off, free,
         dcrc) = struct.unpack_from("<8sQQQQIIII", ch)
        assert magic == b"ElfChnk\x00" and hs == 0x80
        assert (fnum, fid) == (expect_id, expect_id) and lnum == lid >= fid
        assert struct.unpack_from("<I", ch, 0x7C)[0] == zlib.crc32(ch[:0x78] + ch[0x80:0x200])
        assert dcrc == zlib.crc32(ch[0x200:free])
        assert not any(ch[free:])  # free space stays zero
        off, rid = 0x200, fid
        while off < free:
            m, size, r = struct.unpack_from("<IIQ", ch, off)
            assert (m, r) == (0x2A2A, rid) and size % 8 == 0
            assert struct.unpack_from("<I", ch, off + size - 4)[0] == size
            last = off
            off += size
            rid += 1
        assert off == free and last == last_off and rid - 1 == lid
        expect_id = lid + 1
    assert expect_id == 500 + len(evs)


def test_both_parsers_read_what_was_written(written):
    path, evs = written
    rust, py = read_both(path)
    assert len(rust) == len(py) == len(evs)
    for i, (ev, r, p) in enumerate(zip(evs, rust, py)):
        assert r["event_record_id"] == 500 + i
        shape, values = build(ev, 500 + i)
        want = canon(to_xml(shape, values))
        assert canon(r["data"]) == want, i
        assert canon(p, b64=True) == want, i


def test_records_json_fields(written):
    path, evs = written
    first = next(iter(PyEvtxParser(str(path)).records_json()))
    ev = json.loads(first["data"])["Event"]
    assert ev["System"]["Provider"]["#attributes"]["Name"] == "Test-Provider"
    assert ev["System"]["EventID"] == 100
    assert ev["EventData"]["hex32"] == "0x80240000"
    assert ev["EventData"]["guid"] == "00000000-0000-0000-0000-000000000000"
    assert ev["System"]["TimeCreated"]["#attributes"]["SystemTime"] == "2025-03-11T18:30:00.000000Z"


def test_same_events_same_bytes(tmp_path):
    evs = _typed_events(300)
    a, b = tmp_path / "a.evtx", tmp_path / "b.evtx"
    for p in (a, b):
        with EvtxWriter(p) as w:
            w.extend(evs)
    assert a.read_bytes() == b.read_bytes()


def test_oversized_values_are_refused_and_the_file_stays_valid(tmp_path):
    from evtx_writer.chunk import RecordTooLarge

    t = dt.datetime(2025, 1, 1, tzinfo=UTC)
    path = tmp_path / "big.evtx"
    with EvtxWriter(path) as w:
        w.add(Event("P", 1, t, "H", "Application", data={"s": "ok"}))
        with pytest.raises(RecordTooLarge):
            w.add(Event("P", 2, t, "H", "Application", data={"s": "x" * 40000}))  # > 65535 bytes
        with pytest.raises(RecordTooLarge):
            w.add(Event("P", 3, t, "H", "Application",
                        data={f"k{i}": "y" * 30000 for i in range(3)}))
        w.add(Event("P", 4, t, "H", "Application", data={"s": "after"}))
    rust, py = read_both(path)
    assert [r["event_record_id"] for r in rust] == [1, 2] and len(py) == 2
    assert "after" in rust[1]["data"]


def test_name_hash_matches_windows(shared_data):
    """Every name in a real chunk string table carries the hash our writer computes."""
    data = (shared_data / "evtx" / "system.evtx").read_bytes()
    checked = 0
    for c in range(3):
        ch = data[0x1000 + c * 0x10000:0x1000 + (c + 1) * 0x10000]
        for bucket, off in enumerate(struct.unpack_from("<64I", ch, 0x80)):
            while off:
                nxt, h, n = struct.unpack_from("<IHH", ch, off)
                name = ch[off + 8:off + 8 + 2 * n].decode("utf-16-le")
                assert name_hash(name) == h and h % 64 == bucket, name
                checked += 1
                off = nxt
    assert checked > 60


# -- the committed fleet -------------------------------------------------------------------
def _committed_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_committed_samples_regenerate_byte_identical(tmp_path):
    assert build_evtx.main(["--out", str(tmp_path)]) == 0
    fresh, committed = _committed_files(tmp_path), _committed_files(COMMITTED)
    assert sorted(fresh) == sorted(committed)
    changed = [k for k in fresh if fresh[k] != committed[k]]
    assert not changed, f"samples/evtx is stale, rerun samples/build_evtx.py: {changed}"


@pytest.fixture(scope="module")
def plan() -> dict:
    return json.loads((COMMITTED / "fleet-plan.json").read_text())


def test_fleet_logs_parse_alike_with_both_parsers(plan):
    for dev in plan["devices"]:
        for fname, info in dev["logs"].items():
            head = (COMMITTED / info["path"]).read_bytes()[:0x80]
            assert struct.unpack_from("<II", head, 0x78) == (1, zlib.crc32(head[:0x78]))  # dirty
            rust, py = read_both(COMMITTED / info["path"])
            assert len(rust) == len(py) == info["records"], (dev["device"], fname)
            ids = [r["event_record_id"] for r in rust]
            assert ids == list(range(info["first_record_id"], info["last_record_id"] + 1))
            for r, p in zip(rust, py):
                assert canon(r["data"]) == canon(p, b64=True)


def test_fleet_plan_evidence_is_in_the_logs(plan):
    by_device = {d["device"]: d for d in plan["devices"]}
    assert sum(d["scenario"].startswith("compliant") for d in plan["devices"]) >= 3
    for dev in plan["devices"]:
        records: dict[tuple[str, int], dict] = {}
        for fname, info in dev["logs"].items():
            for r in PyEvtxParser(str(COMMITTED / info["path"])).records_json():
                records[(fname, r["event_record_id"])] = json.loads(r["data"])["Event"]
        for row in dev["months"]:
            kbs = {row["installed_kb"]} | {a["kb"] for a in row["also_installed"]}
            for e in row["evidence"]:
                ev = records[(e["log"], e["record_id"])]
                assert ev["System"]["Provider"]["#attributes"]["Name"] == e["provider"]
                eid = ev["System"]["EventID"]
                assert (eid["#text"] if isinstance(eid, dict) else eid) == e["event_id"]
                assert ev["System"]["TimeCreated"]["#attributes"]["SystemTime"] == e["time"]
                if (e["provider"], e["event_id"]) == ("Microsoft-Windows-WindowsUpdateClient", 19):
                    assert re.search(r"\((KB\d+)\)", ev["EventData"]["updateTitle"])[1] in kbs
                if (e["provider"], e["event_id"]) == ("Microsoft-Windows-Servicing", 2):
                    assert ev["UserData"]["CbsPackageChangeState"]["PackageIdentifier"] in kbs
            kinds = {(e["provider"], e["event_id"]) for e in row["evidence"]}
            assert (("User32", 1074) in kinds) == row["reboot"], (dev["device"], row["month"])
            assert row["compliant"] == (row["installed_kb"] == row["expected_kb"])
    fallback = by_device["HP-WS-004"]["months"][7]
    assert fallback["how"] == "standard-fallback"
    assert {e["event_id"] for e in fallback["evidence"]} >= {20, 3, 19}


def test_corrupt_variant_has_one_bad_chunk_header(plan):
    dev = next(d for d in plan["devices"] if "corrupt" in d)
    info = dev["corrupt"]
    data = (COMMITTED / info["file"]).read_bytes()
    bad = []
    for c in range((len(data) - 0x1000) // 0x10000):
        ch = data[0x1000 + c * 0x10000:0x1000 + (c + 1) * 0x10000]
        stored = struct.unpack_from("<I", ch, 0x7C)[0]
        if stored != zlib.crc32(ch[:0x78] + ch[0x80:0x200]):
            bad.append(c)
        free, dcrc = struct.unpack_from("<II", ch, 0x30)
        assert dcrc == zlib.crc32(ch[0x200:free])  # records stay intact
    assert bad == [info["chunk"]]
    stored = struct.unpack_from("<I", data, info["chunk_offset"] + 0x7C)[0]
    assert f"0x{stored:08x}" == info["stored_header_crc32"]
