"""What `hpforensics pe info` reports about an image: plain records, no formatting.

A patch image is described with the base images it names and the functions it replaces; names
come from the base image's exports when the base is among the files given or sits in the same
folder (matched by TimeDateStamp + CheckSum, exactly as the kernel matches).
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hpforensics.errors import InputError
from hpforensics.pe.image import PEImage
from hpforensics.pe.peek import peek

log = logging.getLogger(__name__)

MAX_NEIGHBOURS = 500  # files looked at beside a patch image when searching for its base
PE_SUFFIXES = (".dll", ".sys", ".exe", ".efi", ".drv", ".ocx", ".cpl")


@dataclass
class PatchedFunction:
    patch_file: str
    base_timestamp: int
    base_checksum: int
    sequence: int
    base_rva: int
    patch_rva: int
    name: str  # export name in the base image, "" when unknown
    base_file: str  # the base image the name came from, "" when not found


@dataclass
class ImageInfo:
    file: str
    machine: str
    kind: str  # "hotpatch image", "hotpatch-capable base", "image"
    timestamp: int
    checksum: int
    checksum_ok: bool | None  # None: not checked (no checksum in the header)
    size_of_image: int
    image_base: int
    subsystem: int
    hotpatch_capable: bool
    sequence: int | None = None
    bases: list[dict] = field(default_factory=list)
    functions: list[PatchedFunction] = field(default_factory=list)
    patch_entries: dict[str, int] = field(default_factory=dict)  # kind -> count
    load_config_size: int | None = None
    guard_flags: int | None = None
    cfg_functions: int = 0
    cfg_pointers: list[str] = field(default_factory=list)
    dynamic_relocation_version: int | None = None
    dynamic_relocations: dict[str, int] = field(default_factory=dict)  # kind -> ranges
    function_overrides: int = 0
    base_relocations: int = 0
    iat_slots: int = 0
    delay_iat_slots: int = 0
    exports: int = 0
    pdb: str = ""
    pdb_guid: str = ""
    pdb_age: int | None = None
    problems: list[str] = field(default_factory=list)

    def summary_row(self) -> dict:
        """The one-line view for tables; JSON carries every field."""
        bases = "; ".join(f"{b['timestamp']:#x}/{b['checksum']:#x} seq {b['sequence']}"
                          + ("" if b.get("match", "").startswith("base image")
                             else " (NO MATCHING BASE)")
                          for b in self.bases)
        dyn = ", ".join(f"{k}={v}" for k, v in sorted(self.dynamic_relocations.items()))
        ok = "" if self.checksum_ok is None else " ok" if self.checksum_ok else " BAD"
        return {
            "file": os.path.basename(self.file), "kind": self.kind, "machine": self.machine,
            "timestamp": f"{self.timestamp:#010x}", "checksum": f"{self.checksum:#x}{ok}",
            "sequence": self.sequence, "patches (ts/checksum)": bases,
            "load_config": self.load_config_size,
            "guard_flags": None if self.guard_flags is None else f"{self.guard_flags:#x}",
            "cfg": self.cfg_functions, "dynamic_relocations": dyn,
            "pdb": (f"{self.pdb.replace(chr(92), '/').rsplit('/', 1)[-1]} age {self.pdb_age}"
                    if self.pdb else ""),
        }


def describe(image: PEImage, file_bytes: bytes | None = None) -> ImageInfo:
    info = ImageInfo(
        file=image.path, machine=image.machine_name,
        kind=("hotpatch image" if image.hotpatch
              else "hotpatch-capable base" if image.hotpatch_capable else "image"),
        timestamp=image.timestamp, checksum=image.checksum,
        checksum_ok=(None if not image.checksum or image.mapped
                     else image.compute_checksum() == image.checksum),
        size_of_image=image.size_of_image, image_base=image.image_base, subsystem=image.subsystem,
        hotpatch_capable=image.hotpatch_capable,
    )
    lc = image.load_config
    if lc is not None:
        info.load_config_size = lc.size
        info.guard_flags = lc.guard_flags
        info.cfg_functions = len(image.guard_functions)
        info.cfg_pointers = [name for name, _ in image.cfg_pointer_slots()]
    table = image.dynamic_relocation_table
    if table is not None:
        info.dynamic_relocation_version = table.version
        info.dynamic_relocations = dict(Counter(d.kind for d in table.relocations))
        info.function_overrides = len(table.function_overrides)
    info.base_relocations = sum(1 for _, t in image.base_relocations if t)
    info.iat_slots = sum(1 for s in image.imports if not s.delay)
    info.delay_iat_slots = sum(1 for s in image.imports if s.delay)
    info.exports = len(image.exports)
    if image.codeview:
        cv = image.codeview
        info.pdb, info.pdb_guid, info.pdb_age = cv.pdb_name, cv.guid, cv.age
    info.problems = [str(p) for p in image.problems]
    hp = image.hotpatch
    if hp is not None:
        info.sequence = hp.sequence_number
        for b in hp.bases:
            info.bases.append({"timestamp": b.original_timestamp, "checksum": b.original_checksum,
                               "sequence": b.sequence_number, "flags": b.flags,
                               "entries": len(b.patch_table)})
            for e in b.patch_table:
                key = e.kind + (" (inverse)" if e.inverse else "")
                info.patch_entries[key] = info.patch_entries.get(key, 0) + 1
    return info


class BaseFinder:
    """Finds base images by (TimeDateStamp, CheckSum) among given files and their folders.

    Folder neighbours are identified from their first page only; a file is parsed in full only
    when a patch names it.
    """

    def __init__(self, images: list[PEImage]) -> None:
        self._images: dict[tuple[int, int], PEImage] = {
            (i.timestamp, i.checksum): i for i in images}
        self._paths: dict[tuple[int, int], str] = {k: i.path for k, i in self._images.items()}
        self._scanned: set[str] = set()

    def find(self, near: str, timestamp: int, checksum: int) -> PEImage | None:
        key = (timestamp, checksum)
        folder = os.path.dirname(os.path.abspath(near))
        if key not in self._paths and folder not in self._scanned:
            self._scanned.add(folder)
            self._scan(Path(folder))
        if key in self._images:
            return self._images[key]
        if key in self._paths:
            try:
                self._images[key] = PEImage.from_file(self._paths[key], strict=False)
            except InputError as exc:
                log.info("base candidate %s unreadable: %s", self._paths[key], exc)
                del self._paths[key]
                return None
            return self._images[key]
        return None

    def near_miss(self, timestamp: int, checksum: int) -> tuple[str, int] | None:
        """(path, checksum) of an image with this TimeDateStamp but another CheckSum: a forged or
        stale patch, or a base from another build."""
        return next(((p, cs) for (ts, cs), p in self._paths.items()
                     if ts == timestamp and cs != checksum), None)

    def _scan(self, folder: Path) -> None:
        try:
            names = sorted(p for p in folder.iterdir()
                           if p.suffix.lower() in PE_SUFFIXES)[:MAX_NEIGHBOURS]
        except OSError:
            return
        for p in names:
            key = _header_key(p)
            if key and key not in self._paths:
                self._paths[key] = str(p)


def _header_key(path: Path) -> tuple[int, int] | None:
    """(TimeDateStamp, CheckSum) from the first page, without parsing the whole file."""

    try:
        with open(path, "rb") as fh:
            h = peek(fh.read(4096))
    except OSError:
        return None
    return None if h is None else (h.timestamp, h.checksum)


def name_functions(info: ImageInfo, image: PEImage, finder: BaseFinder) -> None:
    """Fill `info.functions` for a patch image, naming them from the base image's exports."""
    hp = image.hotpatch
    if hp is None:
        return
    for i, b in enumerate(hp.bases):
        base = finder.find(image.path, b.original_timestamp, b.original_checksum)
        if base is not None:
            info.bases[i]["match"] = f"base image {base.path}"
        else:
            miss = finder.near_miss(b.original_timestamp, b.original_checksum)
            info.bases[i]["match"] = (
                f"no base found; {miss[0]} has this TimeDateStamp but CheckSum {miss[1]:#x}" if miss
                else "no base found among the given files and their folders")
        for e in b.functions:
            info.functions.append(PatchedFunction(
                patch_file=image.path, base_timestamp=b.original_timestamp,
                base_checksum=b.original_checksum, sequence=b.sequence_number,
                base_rva=e.base_rva, patch_rva=e.patch_rva,
                name=base.function_name(e.base_rva) if base else "",
                base_file=base.path if base else "",
            ))
