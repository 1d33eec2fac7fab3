"""A folder of binaries (an expanded update, a WinSxS copy, a system32 tree) as a manifest:
every PE with its hashes, PE identity, hotpatch metadata and normalised page hashes."""
from __future__ import annotations

import logging
from pathlib import Path

from hpforensics.kb.manifest import (
    HotpatchBaseRef,
    HotpatchRecord,
    Manifest,
    ManifestFile,
    PageDigests,
    PEIdentity,
    Skipped,
)
from hpforensics.kb.scan import ScannedFile, Skip, scan_paths, walk
from hpforensics.kb.importers.components import merge_components

log = logging.getLogger(__name__)

MACHINES = {0x8664: "amd64", 0x14C: "x86", 0xAA64: "arm64", 0x1C4: "arm", 0xA641: "arm64"}
COMPONENT_SUFFIXES = (".manifest", ".mum")
NORMALISATION = "loader mask (relocations, IAT, dynamic relocations) zeroed"


def import_directory(
    root: Path, kb: str, *, pages: bool = True, workers: int | None = None
) -> tuple[list[ManifestFile], list[Skipped], list[Path]]:
    """(files, skipped, component manifests found) for every file under `root`."""
    files: list[ManifestFile] = []
    skipped: list[Skipped] = []
    components: list[Path] = []
    candidates = []
    for p in walk([root]):
        if p.suffix.lower() in COMPONENT_SUFFIXES:
            components.append(p)
        else:
            candidates.append(p)
    for item in scan_paths(candidates, version=True, workers=workers):
        if isinstance(item, Skip):
            skipped.append(Skipped(_rel(item.path, root), item.reason, item.error))
            continue
        files.append(_file(item, root, pages))
        for note in item.notes:
            skipped.append(Skipped(_rel(item.path, root), note, False))
    return files, skipped, components


def _file(item: ScannedFile, root: Path, pages: bool) -> ManifestFile:
    n = item.norm
    hp = None
    if item.hotpatch:
        hp = HotpatchRecord(item.hotpatch["sequence_number"],
                            [HotpatchBaseRef(**b) for b in item.hotpatch["bases"]])
    return ManifestFile(
        name=Path(item.path).name,
        path=_rel(item.path, root),
        version=item.file_version or None,
        architecture=MACHINES.get(n.machine),
        size=item.size,
        sha256=item.sha256,
        pe=PEIdentity(n.timestamp, n.size_of_image, n.checksum,
                      MACHINES.get(n.machine, f"{n.machine:#x}"), n.image_base),
        hotpatch=hp,
        pages=PageDigests(n.algo, {rva: d.hex() for rva, d in n.pages.items()},
                          normalisation=NORMALISATION)
        if pages else None,
    )


def _rel(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def directory_manifest(
    root: Path, kbs: list[str], *, pages: bool = True, workers: int | None = None
) -> Manifest:

    files, skipped, components = import_directory(root, kbs[0], pages=pages, workers=workers)
    manifest = Manifest(kb=kbs[0], also_kbs=kbs[1:], files=files, skipped=skipped,
                        source={"importer": "directory", "path": str(root)})
    if components:
        merge_components(manifest, components)
    archs = {f.architecture for f in manifest.files if f.architecture}
    manifest.architecture = archs.pop() if len(archs) == 1 else ("multi" if archs else None)
    return manifest
