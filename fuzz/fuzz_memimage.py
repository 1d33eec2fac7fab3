"""Fuzz our structure-walking code for memory images (hpforensics.memimage.fastwalk: VAD trees,
PEB loader lists, _UNICODE_STRING reads) over a fake Volatility layer whose bytes are the input
(fakevol.py).

Volatility's own translation layers are too slow to fuzz at a useful rate and are not ours; the
walker only needs `layer.read` and member layouts. The first 16 bytes of the input are the VAD
root and the PEB address; the whole input is memory at address 0. Invariants: no exception
escapes, and the walk is bounded (cycles, self-references and huge lists stop at the limits).
"""
from __future__ import annotations

import _harness

with _harness.instrumented():
    from hpforensics.memimage import fastwalk, rawstruct

import fakevol


def test_one(data: bytes) -> None:
    if len(data) < 16:
        return
    walker = fakevol.walker(data)
    proc = fakevol.process(
        int.from_bytes(data[0:8], "little"), int.from_bytes(data[8:16], "little")
    )
    vads = walker.vad_images(proc) or []
    assert len(vads) <= fastwalk.MAX_NODES
    mods = walker.loader_images(proc) or []
    assert len(mods) <= fastwalk.MAX_ENTRIES
    rawstruct.unicode(walker.klayer, data, 0, walker.fobj, "FileName")


if __name__ == "__main__":
    _harness.main(test_one)
