"""The generator's machine at real size (bench/dump.py): full memory, varied pages, same findings.

Built small here (128 MiB, 23 processes); the bench builds the same at 1, 2 and 4 GiB.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from memimage_helpers import REPO, SAMPLES


@pytest.fixture(scope="module")
def bulk(tmp_path_factory):
    out = tmp_path_factory.mktemp("bulk")
    proc = subprocess.run([sys.executable, str(SAMPLES / "build_memimage.py"), "-o",
                           str(out / "bulk.raw"), "--symbols", str(out / "sym"), "--plan",
                           str(out / "plan.json"), "--copies", "2", "--modules", "4", "--fill",
                           "--size-mib", "128"], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "plan.json").read_text())


def test_pages_carry_content_not_holes(bulk):
    out, plan = bulk
    data = (out / "bulk.raw").read_bytes()
    assert len(data) == 128 << 20 == plan["image"]["size"]
    pages = [data[o:o + 4096] for o in range(0, len(data), 4096)]
    empty = sum(1 for p in pages if not any(p))
    # only the low band below the first allocated frame (0x300000) is left mostly empty
    assert empty <= 0x300000 // 4096
    distinct = {hashlib.blake2b(p, digest_size=16).digest() for p in pages if any(p)}
    assert len(distinct) > 0.99 * (len(pages) - empty)


def test_bulk_machine_gives_the_plants_findings(bulk):
    from hpforensics import scan_inputs as options
    from hpforensics.memimage.analyze import analyze
    from hpforensics.memimage.session import open_image

    out, plan = bulk
    session = open_image(out / "bulk.raw", [out / "sym"])
    result = analyze(session.context, session.kernel, source="dump:bulk.raw",
                     references=options.references([SAMPLES / "pe"]))
    assert len(result.spaces) == plan["image"]["processes"] == 23
    user_modules = sum(1 for m in result.modules if m.pid is not None)
    # every image VAD, listed in the loader or not (rundll32's hpbase.dll is not)
    assert user_modules == sum(len(p.get("image_vads", ())) for p in plan["processes"])
    assert plan["image"]["modules"] == user_modules - 2
    got = {(f.pid, f.module, f.rva, f.size, f.verdict) for f in result.findings}
    want = {(f["pid"], f["module"], int(f["rva"], 16), f["size"], f["verdict"])
            for f in plan["expected_findings"]}
    assert got == want
