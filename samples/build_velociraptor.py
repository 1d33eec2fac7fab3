"""Write samples/velociraptor/: one Velociraptor collection zip of sample device HP-WS-001, laid
out as a collection of contrib/velociraptor/Windows.Hotpatch.Collect.yaml is:

    uploads/auto/C%3A/Windows/System32/winevt/Logs/<log, '%' escaped as %25>   (source EventLogs)
    results/Windows.Hotpatch.Collect%2FEnrolment.json      JSON Lines, one row per key or value
    results/Windows.Hotpatch.Collect%2FHotpatchKeys.json   (empty: a client has no Hotpatch.* key)
    uploads.json, log.json                                 Velociraptor's own bookkeeping

The logs are the sample fleet's (samples/evtx/HP-WS-001); the registry rows say what an
enrolled Windows 11 24H2 client holds. Deterministic: fixed member times and order.

    python samples/build_velociraptor.py [OUTDIR]
"""
from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Sequence

HERE = Path(__file__).resolve().parent
DEVICE = HERE / "evtx" / "HP-WS-001"
ARTIFACT = "Windows.Hotpatch.Collect"
LOGS = ("System.evtx", "Setup.evtx", "Microsoft-Windows-WindowsUpdateClient%4Operational.evtx",
        "Microsoft-Windows-WaaSMedic%4Operational.evtx")
WHEN = (2026, 5, 20, 9, 0, 0)  # every member's time: the collection's
UPDATE = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\PolicyManager\current\device\Update"
MEMORY = r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management"
# What the Enrolment source returns on an enrolled client (OSPath.Path names the value).
ENROLLED_ROWS = (
    {"Path": UPDATE + r"\AllowRebootlessUpdates", "Name": "AllowRebootlessUpdates",
     "IsDir": False, "Type": "DWORD", "Value": 1, "Mtime": "2025-02-01T07:18:00Z"},
    {"Path": MEMORY + r"\HotPatchTableSize", "Name": "HotPatchTableSize", "IsDir": False,
     "Type": "DWORD", "Value": 4096, "Mtime": "2025-02-01T07:20:00Z"},
)


def escape(component: str) -> str:
    """Velociraptor's escaping of a path component in a collection (C: -> C%3A, % -> %25)."""
    return re.sub(r"[^A-Za-z0-9 ._\-]",
                  lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), component)


def results_member(source: str) -> str:
    return "results/" + escape(f"{ARTIFACT}/{source}") + ".json"


def _put(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, WHEN)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def build(out: Path, device: Path = DEVICE, *, logs: Sequence[str] = LOGS,
          rows: Sequence[dict] | bytes = ENROLLED_ROWS) -> Path:
    """One collection zip of `device` in `out`; `logs` picks the uploaded logs, `rows` the
    Enrolment rows (or the result set's bytes as they are)."""
    out.mkdir(parents=True, exist_ok=True)
    zpath = out / f"Collection-{device.name}-2026-05-20T09_00_00Z.zip"
    folder = device / "C" / "Windows" / "System32" / "winevt" / "Logs"
    uploads = []
    with zipfile.ZipFile(zpath, "w") as zf:
        for log in logs:
            parts = ["C:", "Windows", "System32", "winevt", "Logs", log]
            _put(zf, "/".join(["uploads", "auto"] + [escape(p) for p in parts]),
                 (folder / log).read_bytes())
            uploads.append({"Type": "auto", "Components": parts,
                            "Size": (folder / log).stat().st_size})
        _put(zf, results_member("Enrolment"), rows if isinstance(rows, bytes)
             else "".join(json.dumps(r) + "\n" for r in rows).encode())
        _put(zf, results_member("HotpatchKeys"), b"")
        _put(zf, "uploads.json", "".join(json.dumps(u) + "\n" for u in uploads).encode())
        _put(zf, "log.json", (json.dumps({"_ts": 1779267600, "level": "DEFAULT",
                                          "message": f"Starting collection of {ARTIFACT}"})
                              + "\n").encode())
    return zpath


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "velociraptor"
    print(build(target))
