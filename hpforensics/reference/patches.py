"""Patch images mapped in an address space, and which base images they patch.

A patch image's hot patch records come from its own file when the reference provider finds
it, otherwise from its mapped header in memory (what the kernel itself read), and each finding
says which.
"""
from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

from hpforensics.errors import InputError
from hpforensics.pe.hotpatch import HotPatchBase, HotPatchInfo, PatchEntry
from hpforensics.pe.peek import peek
from hpforensics.pe.structures import ChunkType, c_pe
from hpforensics.space import AddressSpace, MappedImage
from hpforensics.pe.image import PEImage

log = logging.getLogger(__name__)

MAX_PATCH_IMAGE = 64 << 20  # read a patch image from memory only up to this size
# Windows names a patch image after the module it patches and loads it from WinSxS:
# appinfo.dll + KB5072014 -> C:\Windows\WinSxS\...\appinfo_hotpatch.dll (microsoft/Detours #367).
PATCH_IMAGE_NAME = re.compile(r"^(?P<stem>.+)_hotpatch(?P<ext>\.(?:dll|sys|exe))$", re.IGNORECASE)


def patched_module_name(name: str) -> str | None:
    """"appinfo_hotpatch.dll" -> "appinfo.dll": the module a patch image is named for."""
    m = PATCH_IMAGE_NAME.match(name)
    return f"{m['stem']}{m['ext']}" if m else None


def from_winsxs(path: str) -> bool:
    return "\\winsxs\\" in path.replace("/", "\\").lower()


@dataclass
class PatchImage:
    image: MappedImage
    info: HotPatchInfo
    path: str
    expected: Any = None  # ExpectedImage of its own file, when found
    info_source: str = "file"  # "file" or "memory"
    kb: str = ""
    functions: dict[int, dict[int, PatchEntry]] = field(default_factory=dict)  # id(base): {rva: e}

    @property
    def sequence(self) -> int:
        return self.info.sequence_number

    @property
    def recognised_by(self) -> str:
        """Which signals name this image a patch image: its records always, the loader's
        LoadReason and the Windows file name where they agree."""
        signals = ["hot patch records"]
        if self.image.is_patch_image:
            signals.append("LoadReasonPatchImage")
        if patched_module_name(self.image.name):
            signals.append("name")
        return ", ".join(signals)

    def base_for(self, timestamp: int, checksum: int) -> HotPatchBase | None:
        return self.info.base_for(timestamp, checksum)

    def function_entry(self, base: HotPatchBase, rva: int) -> PatchEntry | None:
        table = self.functions.get(id(base))
        if table is None:
            table = {e.base_rva: e for e in base.functions}
            self.functions[id(base)] = table
        return table.get(rva)

    def data_entries(self, base: HotPatchBase) -> list[PatchEntry]:
        """Entries other than FUNCTION: pointers/rel32s the kernel writes into either image."""
        return [e for e in base.patch_table
                if e.chunk_type not in (ChunkType.FUNCTION, ChunkType.NONE,
                                        ChunkType.NO_CALL_TARGET)]


@lru_cache(maxsize=2)
def _hotpatch_field(is64: bool) -> int:
    """Offset of HotPatchTableOffset inside IMAGE_LOAD_CONFIG_DIRECTORY{32,64}."""
    struct_ = c_pe.IMAGE_LOAD_CONFIG_DIRECTORY64 if is64 else c_pe.IMAGE_LOAD_CONFIG_DIRECTORY32
    off = 0
    for f in struct_.__fields__:
        if f.name == "HotPatchTableOffset":
            return off
        off += len(f.type)
    raise AssertionError("HotPatchTableOffset missing from the load config declaration")


def may_be_patch_image(space: AddressSpace, image: MappedImage) -> bool:
    """Cheap look at the mapped header and load config: does it carry hot patch records?"""
    h = peek(space.read_exact(image.base, 0x400) or b"")
    if h is None:
        return False
    load_config = h.directory(10)  # IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG
    if load_config is None or not load_config[0]:
        return False
    rva, is64 = load_config[0], h.is64
    off = _hotpatch_field(is64)
    raw = space.read_exact(image.base + rva, off + 4)
    if raw is None:
        return image.is_patch_image
    size = struct.unpack_from("<I", raw, 0)[0]
    return size >= off + 4 and struct.unpack_from("<I", raw, off)[0] != 0


def patch_info_from_memory(space: AddressSpace, image: MappedImage) -> HotPatchInfo | None:
    """Parse the hot patch records from the mapped image itself (memory layout)."""

    if image.size > MAX_PATCH_IMAGE or not may_be_patch_image(space, image):
        return None
    data = space.read(image.base, image.size).data
    try:
        pe = PEImage.from_bytes(data, image.path or image.name, mapped=True, strict=False)
    except InputError as exc:
        log.info("%s: mapped header unreadable: %s", image.name, exc)
        return None
    return pe.hotpatch


def collect_patches(
    space: AddressSpace,
    images: Sequence[MappedImage],
    expected_of,  # callable(MappedImage) -> ExpectedImage | None (cached by the caller)
    kb_lookup=None,
    verified: Sequence[MappedImage] | None = None,
) -> list[PatchImage]:
    """Every image in `images` that carries hot patch records, sorted by base."""
    out: list[PatchImage] = []
    wanted = {m.base for m in verified} if verified is not None else None
    for im in images:
        # References are built for modules being verified anyway; for the others only when
        # the mapped header says the image carries hot patch records.
        exp = expected_of(im) if wanted is None or im.base in wanted else None
        info = getattr(getattr(exp, "template", None), "hotpatch", None) if exp else None
        source = "file"
        if info is None and exp is None and may_be_patch_image(space, im):
            exp = expected_of(im)
            info = getattr(getattr(exp, "template", None), "hotpatch", None) if exp else None
            if info is None:
                info = patch_info_from_memory(space, im)
                source = "memory"
        elif info is None and (im.is_patch_image or patched_module_name(im.name)):
            info = patch_info_from_memory(space, im)
            source = "memory"
        if info is None:
            continue
        path = exp.path if exp is not None else im.path
        kb = ""
        if kb_lookup is not None:
            try:
                kb = kb_lookup(path) or ""
            except Exception as exc:  # a lookup failure must not stop verification
                log.warning("kb lookup for %s failed: %s", path, exc)
        out.append(PatchImage(im, info, path, exp, source, kb))
    return sorted(out, key=lambda p: p.image.base)


def patches_for(patches: Sequence[PatchImage], timestamp: int,
                checksum: int) -> list[tuple[PatchImage, HotPatchBase]]:
    """Patch images naming (timestamp, checksum) as a base, highest sequence first."""
    found = []
    for p in patches:
        b = p.base_for(timestamp, checksum)
        if b is not None:
            found.append((p, b))
    found.sort(key=lambda pb: (-pb[1].sequence_number, -pb[0].sequence, pb[0].image.base))
    return found
