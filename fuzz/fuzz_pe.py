"""Fuzz the PE / load-config / hotpatch / dynamic-relocation parser (both layouts), the pe-info
summary built on it and the loader ranges the engine masks with.

Byte 0 picks the layout (bit 0: mapped) and strictness (bit 1: strict=False keeps going past a
corrupt directory); the rest is the image. Allowed outcome for bad input: InputError.
"""
from __future__ import annotations


import _harness

with _harness.instrumented():
    from hpforensics.errors import InputError
    from hpforensics.pe.image import PEImage
    from hpforensics.pe.summary import describe


def test_one(data: bytes) -> None:
    if not data:
        return
    ctl, body = data[0], data[1:]
    try:
        img = PEImage.from_bytes(body, "fuzz.dll", mapped=bool(ctl & 1), strict=not ctl & 2)
    except InputError:
        return
    img.loader_ranges()
    img.iat_ranges
    img.cfg_pointer_slots()
    img.hotpatch_capable
    if img.hotpatch is not None:
        for base in img.hotpatch.bases:
            list(base.patch_table)
    try:
        describe(img, None if ctl & 1 else body)
    except InputError:
        pass


if __name__ == "__main__":
    _harness.main(test_one)
