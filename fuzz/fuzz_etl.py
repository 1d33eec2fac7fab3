"""Fuzz the ETW trace reader behind `timeline` (etl_reader.py over dissect.etl and
etl_buffers.py: the WMI buffer headers, event headers, TraceLogging metadata and the manifests
it bundles). The input is the .etl file. Damage must become warnings: no exception may
escape.
"""
from __future__ import annotations

import _harness

with _harness.instrumented():
    from hpforensics.evtx.etl_reader import read_etl
    from hpforensics.timeline.normalise import normalise
    from hpforensics.evtx.records import ReadStats

FILE = _harness.ScratchFile(".etl")


def test_one(data: bytes) -> None:
    path = FILE.write(data)
    stats = ReadStats(source=path)
    for raw in read_etl(path, stats, relevant_only=False):
        normalise(raw, path, "fuzz-host", None)


if __name__ == "__main__":
    _harness.main(test_one)
