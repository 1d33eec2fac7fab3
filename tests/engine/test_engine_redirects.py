"""The hotpatch chain, link by link, on the hp1 sample with bytes changed the way an attacker
(or the older FF 25 form of the engine) would: each broken link is the reason given."""
from __future__ import annotations

import struct

from test_engine_samples import PLAN, _int, build

from hpforensics.engine import verify_space
from hpforensics.sources.files import FilesSpace
from hpforensics.model import Verdict

SCENARIO = next(s for s in PLAN["scenarios"] if s["name"] == "hp1")
HPAT = next(_int(r["base"]) for r in SCENARIO["regions"] if r["kind"] == "hpat")
F0, F1, F2 = 0x1010, 0x1030, 0x1040  # HpCheckToken, HpAdd (both patched), HpGetCount (not)


def _run(edit_base=None, edit_hpat=None):
    space, images, refs = build(SCENARIO)
    base = images[0]
    mem = bytearray(space.read(base.base, base.size).data)
    hpat = bytearray(space.read(HPAT, 0x2000).data)
    if edit_base:
        edit_base(mem, base.base)
    if edit_hpat:
        edit_hpat(hpat)
    regions = [(im, space.read(im.base, im.size).data) for im in images[1:]]
    space = FilesSpace([(base, bytes(mem)), *regions], [(HPAT, bytes(hpat))])
    result = verify_space(space, refs, images=[base])
    return {f.function_rva: f for f in result.findings if f.function_rva is not None}


def test_older_ff25_form_is_a_hotpatch():
    def older(mem, b):
        # FF 25 disp32 at F-6 reading HPAT entry 0's pointer slot directly, EB F8 at F.
        slot = HPAT + 0x1000
        mem[F0 - 6 : F0] = b"\xff\x25" + struct.pack("<i", slot - (b + F0))
        mem[F0 : F0 + 2] = b"\xeb\xf8"

    by_fn = _run(older)
    f = by_fn[F0]
    assert f.verdict == Verdict.HOTPATCH and f.rva == F0 - 6 and f.size == 8, f
    assert f.branch_target == HPAT + 0x1000 and f.sequence == 1
    assert by_fn[F1].verdict == Verdict.HOTPATCH


def test_chain_reused_for_a_function_the_patch_does_not_name():
    def reuse(mem, b):
        # HpGetCount redirected through HPAT entry 0 (a genuine stub for HpCheckToken).
        mem[F2 - 5 : F2 + 2] = b"\xe9" + struct.pack("<i", HPAT - (b + F2)) + b"\xeb\xf9"

    f = _run(reuse)[F2]
    assert f.verdict == Verdict.UNEXPLAINED
    assert "does not name the function at RVA 0x1040" in f.reason


def test_swapped_hpat_pointers():
    def swap(hpat):
        a, b = hpat[0x1000:0x1008], hpat[0x1008:0x1010]
        hpat[0x1000:0x1008], hpat[0x1008:0x1010] = b, a

    by_fn = _run(edit_hpat=swap)
    for fn in (F0, F1):
        assert by_fn[fn].verdict == Verdict.UNEXPLAINED
        assert "the patch table says" in by_fn[fn].reason


def test_hpat_pointer_leading_out_of_the_patch_image():
    def away(hpat):
        hpat[0x1000:0x1008] = struct.pack("<Q", 0x7FFB_1260_0000)

    f = _run(edit_hpat=away)[F0]
    assert f.verdict == Verdict.UNEXPLAINED and "not into a mapped hotpatch image" in f.reason


def test_stub_bytes_altered():
    def stub(hpat):
        hpat[0:8] = b"\xff\x25\xfa\x0f\x00\x00\x90\x90"

    f = _run(edit_hpat=stub)[F0]
    assert f.verdict == Verdict.UNEXPLAINED and "not an HPAT stub" in f.reason


def test_extra_byte_in_the_window():
    def extra(mem, b):
        mem[F0 - 6] ^= 0xFF

    f = _run(extra)[F0]
    assert f.verdict == Verdict.UNEXPLAINED and "byte before the E9" in f.reason
    assert f.rva == F0 - 6 and f.size == 8


def test_hostile_memory_never_breaks_classification():
    """Random redirect-shaped bytes (EB F9 / EB F8 with random rel32s, stub lookalikes) all over
    the module and the HPAT: every run ends with findings, none raises."""
    import random

    rng = random.Random(11)

    def scribble(mem, b):
        for _ in range(40):
            at = rng.randrange(8, len(mem) - 8)
            form = rng.choice([b"\xeb\xf9", b"\xeb\xf8", b"\xe9", b"\xff\x25", b"\xff\x15"])
            mem[at : at + len(form)] = form
            mem[at - 4 : at] = struct.pack("<i", rng.randrange(-(1 << 31), 1 << 31))

    def stubs(hpat):
        for _ in range(20):
            at = rng.randrange(0, 0x2000 - 8) & ~7
            hpat[at : at + 8] = rng.choice([b"\xff\x25\xfa\x0f\x00\x00\xcc\xcc",
                                            struct.pack("<Q", rng.getrandbits(64))])

    for _ in range(25):
        by_fn = _run(scribble, stubs)
        assert all(f.verdict in Verdict for f in by_fn.values())
