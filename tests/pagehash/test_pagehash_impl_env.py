"""HPF_PAGEHASH_IMPL forces a code path for a whole process: each path the CPU has, run in a
fresh interpreter through the public API, gives the xxhash / hashlib digests and the same
comparison as the default path; a spec naming a path that does not exist or that this CPU
lacks stops the import with one line naming the variable."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
from pagehash_impls import IMPLS, available

# every short-input branch, both sides of each stripe and block boundary, one and two 4 KiB
# pages and their neighbours, several pages with a partial tail
CHILD = r"""
import hashlib, json, random, sys
import xxhash
from hpforensics import pagehash
rnd = random.Random(18)
data = rnd.randbytes(3 * 65536 + 123)
bad = []
# 0 bytes is no page at all
lengths = list(range(1, 260)) + [1023, 1024, 1025, 4031, 4032, 4095, 4096, 4097, 8192, 65536]
for n in lengths:
    if pagehash.hash_pages(data[:n], "xxh128", 1 << 20).digests != xxhash.xxh3_128_digest(data[:n]):
        bad.append(("xxh128", n))
    sha = pagehash.hash_pages(data[:n], "sha256", 1 << 20).digests
    if sha != hashlib.sha256(data[:n]).digest():
        bad.append(("sha256", n))
ph = pagehash.hash_pages(data, "xxh128", 4096, threads=2)
pages = [xxhash.xxh3_128_digest(data[o:o + 4096]) for o in range(0, len(data), 4096)]
if ph.digests != b"".join(pages):
    bad.append(("pages", len(data)))
other = bytearray(data)
for at in (0, 255, 256, 4095, 70000, len(data) - 1):
    other[at] ^= 0x40
mask = [(250, 260)]
cmp = pagehash.compare_pages(data, bytes(other), 4096, mask, threads=1)
print(json.dumps({"impl": pagehash.implementations(), "bad": bad, "ranges": cmp.ranges}))
"""


def run_child(spec: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HPF_PAGEHASH_IMPL=spec)
    return subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120
    )


WANT_RANGES = [[0, 1], [4095, 4096], [70000, 70001], [3 * 65536 + 122, 3 * 65536 + 123]]


@pytest.mark.parametrize("kind", ["xxh128", "compare"])
def test_every_path_forced_by_env(kind):
    for name in available(kind):
        run = run_child(f"{kind}={name}")
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["impl"][kind] == name
        assert out["bad"] == []
        assert out["ranges"] == WANT_RANGES, name


def test_bare_name_sets_every_kind_that_has_it():
    if platform.machine().lower() in ("aarch64", "arm64"):  # NEON is part of ARMv8-A
        out = json.loads(run_child("neon").stdout)
        assert out["impl"]["xxh128"] == "neon"  # compare has no NEON body: left as it was
    else:  # SSE2 is part of x86-64 itself: every x86-64 CPU has it
        out = json.loads(run_child("sse2").stdout)
        assert (out["impl"]["xxh128"], out["impl"]["compare"]) == ("sse2", "sse2")
    out = json.loads(run_child("scalar,sha256=portable").stdout)
    assert (out["impl"]["xxh128"], out["impl"]["compare"], out["impl"]["sha256"]) == (
        "scalar",
        "scalar",
        "portable",
    )
    assert out["bad"] == [] and out["ranges"] == WANT_RANGES


def test_bad_spec_stops_the_import_with_one_line():
    missing = [n for n in IMPLS["xxh128"] if n not in available("xxh128")]
    cases = {
        "xxh128=avx9": "xxh128 has no implementation 'avx9'",
        "hash=sse2": "unknown kind 'hash'",
        "fast": "no kind has an implementation 'fast'",
    }
    if missing:
        cases[f"xxh128={missing[0]}"] = f"xxh128 implementation '{missing[0]}' is not available"
    for spec, why in cases.items():
        run = run_child(spec)
        assert run.returncode != 0
        last = run.stderr.strip().splitlines()[-1]
        assert f"HPF_PAGEHASH_IMPL={spec}: {why}" in last, last
