"""A module carved from memory, put back in its address space from files: the module's bytes,
the patch images laid out at their bases, raw regions (an HPAT, private memory) and other
images named only by address. What `pe diff` verifies; a library call, so the CLI stays thin.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hpforensics.errors import InputError
from hpforensics.model import ScanResult
from hpforensics.engine import verify_space
from hpforensics.evidence import map_evidence
from hpforensics.reference import FileReferences, build_expected
from hpforensics.reference.expected import template_for_file
from hpforensics.sources.files import FilesSpace
from hpforensics.space import MappedImage


@dataclass
class CarvedModule:
    disk: Path  # the module's on-disk file
    memory: Path  # its bytes as mapped (SizeOfImage, or more: 24H2 extension pages)
    base: int
    patches: list[tuple[Path, int | None]] = field(default_factory=list)  # base None: preferred
    regions: list[tuple[Path, int]] = field(default_factory=list)
    modules: list[tuple[str, int, int]] = field(default_factory=list)  # name, base, size


def diff_carved(carved: CarvedModule, include_loader: bool = False) -> ScanResult:
    """Build the space and verify the carved module against its file."""

    disk, memory, base = carved.disk, carved.memory, carved.base
    expected = build_expected(disk, base)
    data = map_evidence(memory)
    image_end = (expected.size + 0xFFF) & ~0xFFF
    # A carved mapping may run past SizeOfImage in whole pages: 24H2's extension pages.
    if len(data) != expected.size and (len(data) < image_end or len(data) % 0x1000):
        raise InputError(memory, f"memory image is {len(data):#x} bytes but {disk.name} has "
                         f"SizeOfImage {expected.size:#x} (a mapping with extension pages runs "
                         "past it in whole pages)", min(len(data), expected.size))
    me = MappedImage(base, expected.size, str(disk), disk.name, timestamp=expected.timestamp,
                     checksum=expected.checksum, mapped_size=len(data))
    images = [(me, bytes(data))]
    files = {base: str(disk)}
    for path, pbase in carved.patches:
        if pbase is None:  # no base given: where the file asks to be loaded
            pbase = template_for_file(path).headers.image_base
        laid = build_expected(path, pbase)
        images.append((MappedImage(pbase, laid.size, str(path), path.name, is_patch_image=True,
                                   timestamp=laid.timestamp, checksum=laid.checksum), laid.data))
        files[pbase] = str(path)
    for name, mbase, size in carved.modules:
        images.append((MappedImage(mbase, size, name, name), b""))
    raw = [(rbase, bytes(map_evidence(path))) for path, rbase in carved.regions]
    space = FilesSpace(images, raw, source=f"file:{memory}")
    return verify_space(space, FileReferences(files), images=[me], include_loader=include_loader)
