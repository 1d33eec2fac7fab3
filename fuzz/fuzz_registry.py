"""Fuzz the registry readers behind `timeline`: hives (hive_file.py, base block, bins, cells,
the enrolment keys), a hive with its transaction log replayed (hive_log.py), `.reg` exports
(UTF-16 or UTF-8, continuation lines, hex data) and Velociraptor result rows (JSON Lines).

Byte 0 (% 4): 0 hive, 1 hive + .LOG1 (byte 1-2: where the log starts), 2 .reg, 3 results; the
rest is the file. Damage must become warnings: no exception may escape.
"""
from __future__ import annotations

import os
import tempfile

import _harness

with _harness.instrumented():
    from hpforensics.timeline.normalise import normalise
    from hpforensics.evtx.records import ReadStats
    from hpforensics.evtx.formats.registry import read_registry

_DIR = tempfile.mkdtemp(prefix="hpf-fuzz-reg-")
RESULTS = os.path.join(_DIR, "Windows.Hotpatch.Collect%2FEnrolment.json")
PATHS = {0: os.path.join(_DIR, "SOFTWARE"), 1: os.path.join(_DIR, "logged", "SYSTEM"),
         2: os.path.join(_DIR, "export.reg"), 3: RESULTS}
os.makedirs(os.path.dirname(PATHS[1]), exist_ok=True)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def test_one(data: bytes) -> None:
    if len(data) < 3:
        return
    kind = data[0] % 4
    body = data[3:]
    path = PATHS[kind]
    if kind == 1:  # the hive, then its log, split where bytes 1-2 say
        cut = min(len(body), int.from_bytes(data[1:3], "little"))
        _write(path, body[:cut])
        _write(path + ".LOG1", body[cut:])
    else:
        _write(path, body)
    stats = ReadStats(source=path)
    for raw in read_registry(path, stats):
        normalise(raw, path, "fuzz-host", None)


if __name__ == "__main__":
    _harness.main(test_one)
