"""A stand-in for the bits of Volatility our structure walkers touch (`layer.read`, a context with
layers and a kernel module, member layouts), so the walkers can be fuzzed and tested over plain
bytes. Member offsets are Windows 11 x64's; the bytes are the input, mapped at address 0.

Used by fuzz/fuzz_memimage.py and tests/corrupt/test_resource_bounds.py (no atheris here).
"""
from __future__ import annotations

from hpforensics.memimage.rawstruct import Layout, Member


class FakeLayer:
    address_mask = (1 << 48) - 1

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data

    def read(self, offset: int, length: int, pad: bool = False) -> bytes:
        from volatility3.framework import exceptions

        if offset < 0 or offset + length > len(self.data):
            raise exceptions.InvalidAddressException("fake", offset, "outside the fake layer")
        return bytes(self.data[offset:offset + length])


class Obj:
    """Attribute bag standing in for Volatility objects (processes, modules)."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def layout(type_name: str, size: int, members: dict[str, tuple]) -> Layout:
    lay = Layout.__new__(Layout)
    lay.type_name, lay.size = type_name, size
    lay.members = {k: Member(*v) for k, v in members.items()}
    return lay


LDR_MEMBERS = {
    "InLoadOrderLinks.Flink": (0x0, 8), "DllBase": (0x30, 8), "SizeOfImage": (0x40, 4),
    "FullDllName.Length": (0x48, 2), "FullDllName.Buffer": (0x50, 8),
    "BaseDllName.Length": (0x58, 2), "BaseDllName.Buffer": (0x60, 8),
    "TimeDateStamp": (0x80, 4), "CheckSum": (0x84, 4), "ActivePatchImageBase": (0x88, 8),
    "HotPatchState": (0x90, 4), "LoadReason": (0x94, 4)}


def fake_layouts() -> list[Layout]:
    """_MMVAD_SHORT, _MMVAD, _SUBSECTION, _CONTROL_AREA, _FILE_OBJECT, _PEB, _PEB_LDR_DATA,
    _LDR_DATA_TABLE_ENTRY: the order FastWalker takes them in."""
    return [
        layout("_MMVAD_SHORT", 0x40, {
            "VadNode.Left": (0x0, 8), "VadNode.Right": (0x8, 8), "StartingVpn": (0x18, 4),
            "EndingVpn": (0x1C, 4), "StartingVpnHigh": (0x20, 1), "EndingVpnHigh": (0x21, 1),
            "u.VadFlags.VadType": (0x30, 4, 4, 7)}),
        layout("_MMVAD", 0x58, {"Subsection": (0x48, 8)}),
        layout("_SUBSECTION", 0x38, {"ControlArea": (0x0, 8)}),
        layout("_CONTROL_AREA", 0x48, {"FilePointer.Value": (0x40, 8)}),
        layout("_FILE_OBJECT", 0x68, {"FileName.Length": (0x58, 2), "FileName.Buffer": (0x60, 8)}),
        layout("_PEB", 0x20, {"Ldr": (0x18, 8)}),
        layout("_PEB_LDR_DATA", 0x20, {"InLoadOrderModuleList": (0x10, 8)}),
        layout("_LDR_DATA_TABLE_ENTRY", 0x98, LDR_MEMBERS),
    ]


def walker(data: bytes | bytearray):
    """A FastWalker over `data` (kernel and process layers are the same bytes)."""
    from hpforensics.memimage import fastwalk

    layer = FakeLayer(data)
    ctx = Obj(layers={"kernel": layer, "proc": layer}, modules={"nt": Obj(layer_name="kernel")})
    layouts = fake_layouts()
    w = fastwalk.FastWalker(ctx, "nt", *layouts)
    w.hotpatch = layouts[-1]
    return w


def process(vad_root: int, peb: int) -> Obj:
    return Obj(VadRoot=Obj(Root=vad_root), Peb=peb, get_is_wow64=lambda: False,
               add_process_layer=lambda: "proc")
