"""The engine's one comparison goes through the C core; the numpy stand-in used only when the
extension is missing must give the same pages and ranges."""
from __future__ import annotations

import random

import numpy as np

from hpforensics import pagehash
from hpforensics.classify.compare import _numpy_compare, compare


def test_numpy_stand_in_agrees_with_the_c_core():
    rng = random.Random(5)
    for n in (0x1000, 0x5000 + 123, 0x20000):
        a = bytearray(rng.randbytes(n))
        b = bytearray(a)
        for _ in range(60):
            at = rng.randrange(n)
            b[at] ^= 1 + rng.randrange(255)
        mask = np.zeros(n, bool)
        for _ in range(40):
            at = rng.randrange(n)
            mask[at : at + rng.randrange(1, 64)] = True
        bitmap = np.packbits(mask, bitorder="little").tobytes()
        c = pagehash.compare_pages(bytes(a), bytes(b), page_size=0x1000, mask=bitmap)
        ours = compare(bytes(a), bytes(b), bitmap)
        ref = _numpy_compare(bytes(a), bytes(b), 0x1000, bitmap)
        assert ours.ranges == ref.ranges == [tuple(r) for r in c.ranges]
        assert ours.pages == ref.pages == list(c.pages)
        assert ours.ranges  # the test plants changes outside the mask too
