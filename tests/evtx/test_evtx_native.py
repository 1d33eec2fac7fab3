"""The C decoder of kept records (`_evtxscan.decode`, csrc/evtxscan/decode.c) against the
reference, the Rust parser's JSON read by readers.raw_from_json: the same RawRecord for every
record of the real logs and of the sample fleet it reads, and `read_evtx` giving the same
records, counts and warnings with it as without it, in the same order, also when chunks it
reads alternate with chunks it leaves to the parser."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from evtx import PyEvtxParser

from hpforensics import _evtxscan
from hpforensics.evtx import readers
from hpforensics.evtx.chunks import CHUNK_HEADER_SIZE, CHUNK_MAGIC, CHUNK_SIZE, FILE_HEADER_SIZE
from hpforensics.evtx.readers import ALL_EVENTS, SOME_EVENTS, raw_from_json, read_evtx
from hpforensics.evtx.records import RawRecord, ReadStats
from hpforensics.evtx.select import RecordSelector

REPO = Path(__file__).resolve().parents[2]


def _logs(shared_data: Path) -> list[Path]:
    return (sorted((shared_data / "evtx").glob("*.evtx"))
            + sorted((REPO / "samples" / "evtx").rglob("*.evtx")))


def _parsed_by_id(path: Path) -> dict[int, list[RawRecord]]:
    """The reference reading of every record the parser returns, by record ID."""
    out: dict[int, list[RawRecord]] = defaultdict(list)
    it = PyEvtxParser(str(path), number_of_threads=1).records_json()
    while True:
        try:
            for item in it:
                out[item["event_record_id"]].append(raw_from_json(item["data"], item["timestamp"]))
            return out
        except RuntimeError:  # a damaged chunk (one real log has one): the rest is read
            continue


def _record_starts(chunk: bytes) -> list[int]:
    end, at, starts = int.from_bytes(chunk[0x30:0x34], "little"), CHUNK_HEADER_SIZE, []
    while at + 24 <= end and chunk[at:at + 4] == b"**\0\0":
        size = int.from_bytes(chunk[at + 4:at + 8], "little")
        if size < 28 or at + size > end:
            break
        starts.append(at)
        at += size
    return starts


def test_every_record_it_reads_is_the_parsers_reading(shared_data: Path) -> None:
    """All records, not only the kept ones: the System fields and values of every type the
    real logs hold (SIDs, GUIDs, FILETIMEs, hex numbers, binary, string arrays, UserData, the
    EventData of classic events) go through the same comparison."""
    selector = RecordSelector(ALL_EVENTS, SOME_EVENTS)
    total = read = selected = selected_read = 0
    for path in _logs(shared_data):
        data, reference = path.read_bytes(), _parsed_by_id(path)
        for offset in range(FILE_HEADER_SIZE, len(data) - CHUNK_SIZE + 1, CHUNK_SIZE):
            chunk = data[offset:offset + CHUNK_SIZE]
            if not chunk.startswith(CHUNK_MAGIC):
                continue
            got = _evtxscan.select(chunk, selector._rules)
            native = set(got[4] or ()) if got else set()
            for at in _record_starts(chunk):
                record_id = int.from_bytes(chunk[at + 8:at + 16], "little")
                ours = _evtxscan.decode(chunk, (at,), RawRecord)
                total += 1
                selected += at in native
                if ours is None:
                    continue
                want = reference.get(record_id)
                if not want:  # a chunk the parser stops in (the damaged real log)
                    continue
                read += 1
                selected_read += at in native
                assert ours[0] in want, (path.name, hex(offset), hex(at))
    # the bulk of every kind of record, and every record the selector keeps in these logs
    assert total > 9000 and read > 0.9 * total, (read, total)
    assert selected > 2500 and selected_read == selected, (selected_read, selected)


@pytest.mark.parametrize("name", ["system.evtx", "plaso-System.evtx", "security.evtx",
                                  "sample_with_a_bad_chunk_magic.evtx"])
def test_read_evtx_gives_the_same_with_and_without_it(shared_data: Path, name: str) -> None:
    path = str(shared_data / "evtx" / name)
    runs = []
    for native in (False, True):
        stats = ReadStats(path)
        runs.append((list(read_evtx(path, stats, native=native)), stats.records,
                     stats.warnings, stats.expected_records))
    assert runs[0] == runs[1]


def test_sample_fleet_reads_the_same_and_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample fleet's logs (update events, Servicing UserData, classic EventLog events):
    identical with and without the decoder, and no parser run on a clean log of it."""
    import evtx  # readers imports the parser where it runs it: patched here, counted there

    made: list[object] = []
    real = evtx.PyEvtxParser

    def counting(*args, **kwargs):
        made.append(args[0])
        return real(*args, **kwargs)

    for path in sorted((REPO / "samples" / "evtx" / "HP-WS-001").rglob("*.evtx")):
        runs = []
        for native in (False, True):
            made.clear()
            monkeypatch.setattr(evtx, "PyEvtxParser", counting)
            stats = ReadStats(str(path))
            records = list(read_evtx(str(path), stats, native=native))
            monkeypatch.setattr(evtx, "PyEvtxParser", real)
            runs.append((records, stats.records, stats.warnings, len(made)))
        assert runs[0][:3] == runs[1][:3], path.name
        assert runs[0][0] and runs[0][3] == 1 and runs[1][3] == 0, (path.name, runs[1][3])


def test_chunks_left_to_the_parser_keep_their_place(shared_data: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """When the decoder declines some chunks (here every other one it could read), the parser
    reads those in runs between the decoded ones: same records, same order, same counts."""
    path = str(shared_data / "evtx" / "plaso-System.evtx")
    stats = ReadStats(path)
    want = list(read_evtx(path, stats, native=False))
    real, calls = _evtxscan.decode, [0]

    def every_other(chunk, offsets, record_type):
        calls[0] += 1
        return real(chunk, offsets, record_type) if calls[0] % 2 else None

    monkeypatch.setattr(readers, "decode", every_other)
    mixed = ReadStats(path)
    got = list(read_evtx(path, mixed, native=True))
    assert calls[0] > 10
    assert got == want and len(want) > 50
    assert (mixed.records, mixed.warnings) == (stats.records, stats.warnings)


@pytest.mark.parametrize("mangle", ["values", "size", "template"])
def test_a_record_of_another_shape_sends_its_chunk_to_the_parser(shared_data: Path,
                                                                mangle: str) -> None:
    """A kept record the decoder cannot read (a value that does not fit its type, a record cut
    short, a template that is not one) makes decode() answer None for its chunk, never a
    wrong record and never a crash."""
    data = (shared_data / "evtx" / "system.evtx").read_bytes()
    selector = RecordSelector(ALL_EVENTS, SOME_EVENTS)
    for offset in range(FILE_HEADER_SIZE, len(data) - CHUNK_SIZE + 1, CHUNK_SIZE):
        chunk = bytearray(data[offset:offset + CHUNK_SIZE])
        got = _evtxscan.select(chunk, selector._rules)
        if got and got[4]:
            break
    at = got[4][0]
    assert _evtxscan.decode(bytes(chunk), got[4], RawRecord) is not None
    if mangle == "values":  # the first value descriptor claims a GUID of 3 bytes
        body = at + 24
        definition = int.from_bytes(chunk[body + 10:body + 14], "little")
        values = body + 14
        if definition == values:
            values += 24 + int.from_bytes(chunk[definition + 20:definition + 24], "little")
        chunk[values + 4:values + 8] = (3).to_bytes(2, "little") + b"\x0f\x00"
    elif mangle == "size":  # the record ends inside its template instance
        chunk[at + 4:at + 8] = (60).to_bytes(4, "little")
    else:  # the instance token is something else
        chunk[at + 24 + 4] = 0x0d
    assert _evtxscan.decode(bytes(chunk), got[4], RawRecord) is None
