"""Fuzz our structure-walking code for memory images (hpforensics.memimage.fastwalk: VAD trees,
PEB loader lists, _UNICODE_STRING reads) over a fake Volatility layer whose bytes are the input.

Volatility's own translation layers are too slow to fuzz at a useful rate and are not ours; the
walker only needs `layer.read` and member layouts, which are given here with Windows 11 x64
offsets. The first 16 bytes of the input are the VAD root and the PEB address; the whole input
is memory at address 0. Invariants: no exception escapes, and the walk is bounded (cycles,
self-references and huge lists stop at the walker's limits).
"""
from __future__ import annotations

import _harness

with _harness.instrumented():
    from hpforensics.memimage import fastwalk, rawstruct
    from hpforensics.memimage.rawstruct import Layout, Member

from volatility3.framework import exceptions


class FakeLayer:
    address_mask = (1 << 48) - 1

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, offset: int, length: int, pad: bool = False) -> bytes:
        if offset < 0 or offset + length > len(self.data):
            raise exceptions.InvalidAddressException("fake", offset, "outside the fuzz input")
        return self.data[offset:offset + length]


def layout(size: int, **members: tuple) -> Layout:
    lay = Layout.__new__(Layout)
    lay.type_name, lay.size = "fake", size
    lay.members = {k.replace("__", "."): Member(*v) for k, v in members.items()}
    return lay


def fake_layouts() -> list[Layout]:
    m = {
        "VadNode.Left": (0x0, 8), "VadNode.Right": (0x8, 8), "StartingVpn": (0x18, 4),
        "EndingVpn": (0x1C, 4), "StartingVpnHigh": (0x20, 1), "EndingVpnHigh": (0x21, 1),
        "u.VadFlags.VadType": (0x30, 4, 4, 7),
    }
    vad = Layout.__new__(Layout)
    vad.type_name, vad.size, vad.members = "_MMVAD_SHORT", 0x40, {k: Member(*v) for k, v in m.items()}
    ldr = Layout.__new__(Layout)
    ldr.type_name, ldr.size = "_LDR_DATA_TABLE_ENTRY", 0x98
    ldr.members = {k: Member(*v) for k, v in {
        "InLoadOrderLinks.Flink": (0x0, 8), "DllBase": (0x30, 8), "SizeOfImage": (0x40, 4),
        "FullDllName.Length": (0x48, 2), "FullDllName.Buffer": (0x50, 8),
        "BaseDllName.Length": (0x58, 2), "BaseDllName.Buffer": (0x60, 8),
        "TimeDateStamp": (0x80, 4), "CheckSum": (0x84, 4), "ActivePatchImageBase": (0x88, 8),
        "HotPatchState": (0x90, 4), "LoadReason": (0x94, 4)}.items()}
    return [
        vad,
        layout(0x58, Subsection=(0x48, 8)),
        layout(0x38, ControlArea=(0x0, 8)),
        layout(0x48, FilePointer__Value=(0x40, 8)),
        layout(0x68, FileName__Length=(0x58, 2), FileName__Buffer=(0x60, 8)),
        layout(0x20, Ldr=(0x18, 8)),
        layout(0x20, InLoadOrderModuleList=(0x10, 8)),
        ldr,
    ]


class _Obj:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


class FakeContext:
    def __init__(self, layer: FakeLayer) -> None:
        self.layers = {"kernel": layer, "proc": layer}
        self.modules = {"nt": _Obj(layer_name="kernel")}


LAYOUTS = fake_layouts()


def test_one(data: bytes) -> None:
    if len(data) < 16:
        return
    layer = FakeLayer(data)
    walker = fastwalk.FastWalker(FakeContext(layer), "nt", *LAYOUTS)
    walker.hotpatch = LAYOUTS[-1]
    root = int.from_bytes(data[0:8], "little")
    peb = int.from_bytes(data[8:16], "little")
    proc = _Obj(VadRoot=_Obj(Root=root), Peb=peb, get_is_wow64=lambda: False,
                add_process_layer=lambda: "proc")
    vads = walker.vad_images(proc) or []
    assert len(vads) <= fastwalk.MAX_NODES
    mods = walker.loader_images(proc) or []
    assert len(mods) <= fastwalk.MAX_ENTRIES
    rawstruct.unicode(layer, data, 0, LAYOUTS[4], "FileName")


if __name__ == "__main__":
    _harness.main(test_one)
