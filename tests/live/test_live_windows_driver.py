"""The live driver on a Windows-shaped process: the bundled hotpatch samples (samples/pe) mapped
as a Windows process maps them, served through a LiveSpace the way the Windows backend serves
them (drive-letter paths, a working-set answer or none). PE images go to the engine; images
whose pages the OS vouches for are not read."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpforensics.sources.files import FilesSpace
from hpforensics.live.scan import ScanOptions
from hpforensics.model import Verdict
from hpforensics.live.space import LiveBackend, LiveSpace, ProcessInfo, Region, scan_live
from hpforensics.space import PAGE_SIZE, MappedImage

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "pe"
PLAN = json.loads((SAMPLES / "plan.json").read_text())
SYSTEM32 = "C:\\Windows\\System32\\"


class WindowsShapedSpace(LiveSpace):
    def __init__(self, scenario: dict, vouched: bool) -> None:
        n = lambda v: int(v, 0) if isinstance(v, str) else v  # noqa: E731
        images, raw = [], []
        for r in scenario["regions"]:
            data = (SAMPLES / r["file"]).read_bytes()
            if r["kind"] == "image":
                images.append((MappedImage(n(r["base"]), n(r["size"]), SYSTEM32 + r["path"],
                                           r["module"], is_patch_image=r["is_patch_image"],
                                           timestamp=n(r["timestamp"]),
                                           checksum=n(r["checksum"])), data))
            else:
                raw.append((n(r["base"]), data))
        # the DLLs hpbase.dll imports from: mapped, not among the samples (no file to read)
        images += [(MappedImage(n(t["base"]), n(t["size"]), SYSTEM32 + name, name), b"")
                   for name, t in PLAN["import_targets"].items() if name != "ntoskrnl.exe"]
        self.files = FilesSpace(images, raw, source="live:win-test")
        self.source, self.pid, self.process = "live:win-test", 4242, "app.exe"
        self.vouched = vouched

    def images(self):
        return self.files.images()

    def read(self, address, size):
        return self.files.read(address, size)

    def regions(self):
        return [Region(i.base, i.end, "r-xp", 0, i.path) for i in self.images()]

    def image_regions(self, image):
        return [Region(image.base, image.end, "r-xp", 0, image.path)]

    def unchanged_pages(self, start, end):  # QueryWorkingSetEx: every page still shared
        return [True] * ((end - start) // PAGE_SIZE) if self.vouched else None

    def open_file(self, region):
        path = SAMPLES / region.path[len(SYSTEM32):]
        return (os.open(path, os.O_RDONLY), "path") if path.exists() else (None, "no file")


class OneProcess(LiveBackend):
    name = "windows-shaped"

    def __init__(self, scenario: dict, vouched: bool = False) -> None:
        self.space = WindowsShapedSpace(scenario, vouched)

    def processes(self):
        return [ProcessInfo(4242, "app.exe")]

    def open(self, proc):
        return self.space


def _scan(name: str, vouched: bool = False):
    scenario = next(s for s in PLAN["scenarios"] if s["name"] == name)
    options = ScanOptions(reference_dirs=[str(SAMPLES)])
    return scenario, scan_live(OneProcess(scenario, vouched), options=options)


@pytest.mark.parametrize("name", ["hp1", "attacked"])
def test_pe_images_get_the_engine_verdicts(name):
    scenario, result = _scan(name)
    (proc,) = result.processes
    assert proc.status == "ok" and proc.modules == len(result.modules)
    planned = {(c["module"], int(c["rva"], 0) if isinstance(c["rva"], str) else c["rva"],
                Verdict(c["verdict"])) for c in scenario["changes"] if c["verdict"] != "loader"}
    got = {(f.module, f.rva, f.verdict) for f in result.findings
           if f.verdict in (Verdict.HOTPATCH, Verdict.UNEXPLAINED)}
    assert got == planned
    refs = {m.module: (m.reference, m.status) for m in result.modules}
    assert all(refs[m][0].startswith("disk:") for m in refs if m.startswith(("hpbase", "forged")))
    assert refs["kernel32.dll"] == ("none", "no-reference: no file")
    assert proc.hotpatch == sum(v is Verdict.HOTPATCH for _, _, v in planned)
    assert proc.unexplained == sum(v is Verdict.UNEXPLAINED for _, _, v in planned)


def test_images_the_working_set_vouches_for_are_not_read():
    _, result = _scan("attacked", vouched=True)
    assert result.findings == []
    assert all(m.pages_skipped == m.pages_total > 0 and m.status == "ok" for m in result.modules)
    (proc,) = result.processes
    assert proc.pages_read == 0 and proc.pages_skipped == proc.pages_total
