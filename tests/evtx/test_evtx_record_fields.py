"""The C reading of a record's decoded JSON (`_evtxscan.record_fields`, used by
readers.raw_from_json) against the Python walk (readers.json_record) that reads every other shape:
the same RawRecord for every record of the real logs and of the sample fleet, and the Python walk
for every shape the C side does not take."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from evtx import PyEvtxParser

from hpforensics._evtxscan import record_fields
from hpforensics.evtx.readers import json_record, raw_from_json

REPO = Path(__file__).resolve().parents[2]


def _records(path: Path):
    it = PyEvtxParser(str(path), number_of_threads=1).records_json()
    while True:
        try:
            yield from it
            return
        except RuntimeError:  # a damaged chunk (one sample log has one): the rest is read
            continue


def _logs(shared_data: Path) -> list[Path]:
    return (sorted((shared_data / "evtx").glob("*.evtx"))
            + sorted((REPO / "samples" / "evtx").rglob("*.evtx")))


def test_every_real_and_sample_record_reads_as_the_python_walk(shared_data: Path) -> None:
    taken = total = 0
    for path in _logs(shared_data):
        for item in _records(path):
            text, stamp = item["data"], item["timestamp"]
            decoded = orjson.loads(text)
            want = json_record(decoded, text, stamp)
            assert raw_from_json(text, stamp) == want, (path, item["record_id"])
            taken += record_fields(decoded) is not None
            total += 1
    # the C side must carry the bulk (else the fast path is not taken), and the real logs hold
    # shapes it leaves to Python (UserData, positional and nested EventData)
    assert total > 10_000 and 0.5 * total < taken < total, (taken, total)


def _event(system: dict, **rest) -> dict:
    return {"Event": {"System": system, **rest}}


SYSTEM = {"Provider": {"#attributes": {"Name": "P"}}, "EventID": 19, "EventRecordID": 7,
          "Channel": "System", "Computer": "HOST"}


@pytest.mark.parametrize("decoded", [
    _event(SYSTEM, EventData={"a": "x", "n": 5, "t": True, "f": False, "z": None,
                              "Binary": "00"}),
    _event({**SYSTEM, "EventID": {"#attributes": {"Qualifiers": 0}, "#text": 12}}),
    _event({**SYSTEM, "Provider": {"#attributes": {"Name": "", "EventSourceName": "S"}}}),
    _event({**SYSTEM, "Channel": None, "Computer": ""}, EventData={}),
    _event({k: v for k, v in SYSTEM.items() if k != "EventRecordID"}, EventData=None),
    _event(SYSTEM, EventData=""),
])
def test_common_shapes_in_c(decoded: dict) -> None:
    assert record_fields(decoded) is not None
    text = orjson.dumps(decoded).decode()
    assert raw_from_json(text, "2025-01-02T03:04:05.000000Z") == json_record(
        decoded, text, "2025-01-02T03:04:05.000000Z")


@pytest.mark.parametrize("decoded", [
    _event(SYSTEM, EventData={"#attributes": {"Name": "x"}, "a": "1"}),
    _event(SYSTEM, EventData={"Data": {"#text": ["a", "b"]}}),
    _event(SYSTEM, EventData={"a": 1.5}),
    _event(SYSTEM, EventData=["a"]),
    _event(SYSTEM, UserData={"X": {"y": "1"}}),
    _event({**SYSTEM, "EventID": "19"}),
    _event({**SYSTEM, "EventID": True}),
    _event({**SYSTEM, "EventRecordID": 1 << 63}),
    _event({**SYSTEM, "Channel": 5}),
    _event({**SYSTEM, "Provider": {"#attributes": {"Name": None}}}),
    _event({**SYSTEM, "Provider": {"#attributes": {"EventSourceName": None}}}),
    _event({**SYSTEM, "Provider": "P"}),
    _event({k: v for k, v in SYSTEM.items() if k != "Provider"}),
    {"Event": {"System": []}},
    {"Event": "text"},
    [1],
])
def test_other_shapes_left_to_python(decoded) -> None:
    assert record_fields(decoded) is None
    text = orjson.dumps(decoded).decode()
    try:
        want = json_record(decoded, text, "2025-01-02T03:04:05Z")
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)[:20]):
            raw_from_json(text, "2025-01-02T03:04:05Z")
    else:
        assert raw_from_json(text, "2025-01-02T03:04:05Z") == want
