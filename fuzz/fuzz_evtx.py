"""Fuzz EVTX ingestion: the chunk-header integrity scan, the record readers (Rust `evtx` and
python-evtx), the wevtutil-XML and Get-WinEvent-JSON readers, and the normaliser behind them.

Byte 0 picks the reader (0: evtx, 1: python-evtx, 2: XML export, 3: JSON export; with bit 2
set, evtx reads through the C record selector and its size patches); the rest is the file.
Every reader must turn damage into warnings: no exception may escape.
"""

from __future__ import annotations

import _harness

with _harness.instrumented():
    from hpforensics.timeline.classify import Classifier
    from hpforensics.evtx.exports import read_json, read_xml
    from hpforensics.timeline.normalise import normalise
    from hpforensics.evtx.readers import read_evtx, read_python_evtx
    from hpforensics.evtx.records import ReadStats

FILES = {
    0: _harness.ScratchFile(".evtx"),
    1: _harness.ScratchFile(".evtx"),
    2: _harness.ScratchFile(".xml"),
    3: _harness.ScratchFile(".json"),
}
CLASSIFIER = Classifier()


def test_one(data: bytes) -> None:
    if not data:
        return
    kind = data[0] & 3
    path = FILES[kind].write(data[1:])
    stats = ReadStats(source=path)
    reader = {
        0: lambda: read_evtx(path, stats, relevant_only=bool(data[0] & 4)),
        1: lambda: read_python_evtx(path, stats, relevant_only=False),
        2: lambda: read_xml(path, stats),
        3: lambda: read_json(path, stats),
    }[kind]
    for raw in reader():
        normalise(raw, path, "fuzz-host", CLASSIFIER)


if __name__ == "__main__":
    _harness.main(test_one)
