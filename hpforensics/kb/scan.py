"""Walk folders of binaries and normalise every PE in them, in worker processes.

Shared by the directory importer (manifests) and `store build`. A file that is not a PE, or is
a corrupt one, becomes a `Skip` with the reason; the walk always continues.
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from hpforensics.errors import InputError
from hpforensics.kb.normalize import DEFAULT_ALGO, NormalizedImage, hotpatch_json, normalize

log = logging.getLogger(__name__)

MAX_FILE = 512 << 20  # larger files are not images we can use
# Forward/reverse differentials in WinSxS component folders (f\, r\): PA30 (and the older
# PA19) delta files under the image's own name, not images (docs/kb-manifest.md).
DELTA_MAGICS = (b"PA30", b"PA19")


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str
    error: bool  # True: corrupt input (exit code 3); False: simply not an image


@dataclass
class ScannedFile:
    path: str
    size: int
    sha256: str
    norm: NormalizedImage  # .pe dropped: it does not cross process boundaries
    file_version: str = ""
    hotpatch: dict | None = None  # {"sequence_number", "bases": [...]} for hotpatch images
    notes: list[str] = field(default_factory=list)  # metadata that could not be read


def walk(roots: Iterable[Path]) -> Iterator[Path]:
    """Regular files under each root (or the root itself), sorted, symlinks not followed."""
    for root in roots:
        root = Path(root)
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            raise InputError(root, "no such file or directory")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for f in sorted(filenames):
                p = Path(dirpath) / f
                if p.is_file() and not p.is_symlink():
                    yield p


def scan_file(
    path: str | Path, algo: str = DEFAULT_ALGO, version: bool = False
) -> ScannedFile | Skip:
    path = str(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE:
            return Skip(path, f"larger than {MAX_FILE >> 20} MiB", False)
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return Skip(path, f"unreadable: {exc.strerror or exc}", True)
    if data[:2] != b"MZ":
        if data[:4] in DELTA_MAGICS:  # WinSxS component folders keep f\ and r\ deltas
            return Skip(path, f"a servicing delta ({data[:4].decode()}), not an image", False)
        return Skip(path, "not a PE file (no MZ header)", False)
    try:
        norm = normalize(data, os.path.basename(path), path=path, algo=algo)
    except InputError as exc:
        where = f" at offset {exc.offset:#x}" if exc.offset is not None else ""
        return Skip(path, exc.message + where, True)
    item = ScannedFile(path, size, hashlib.sha256(data).hexdigest(), norm)
    if version:  # the manifest importer wants the details; the store does not
        item.file_version = _file_version(data, path)
        item.hotpatch = norm.hotpatch
        if item.hotpatch is None:
            item.hotpatch = _hotpatch(data, path, item.notes)
    norm.pe = None
    return item


def _hotpatch(data: bytes, path: str, notes: list[str]) -> dict | None:
    """Hotpatch metadata through the PE helper's parser (IMAGE_HOT_PATCH_INFO and bases)."""
    try:
        # lazy: only this path uses it (kept off this module's import cost)
        from hpforensics.pe.image import PEImage
    except ImportError:
        notes.append("hotpatch metadata not read: hpforensics.pe is not installed")
        return None
    try:
        info = PEImage.from_bytes(data, path, strict=False).hotpatch
    except InputError as exc:
        notes.append(f"hotpatch metadata unreadable: {exc.message}")
        return None
    return hotpatch_json(info)


def _file_version(data: bytes, path: str) -> str:
    """FileVersion from the version resource's fixed info (dwFileVersionMS/LS), if any."""
    # lazy: pefile is heavy to import and only this path uses it
    import pefile

    try:
        pe = pefile.PE(data=data, fast_load=True)
        pe.parse_data_directories(directories=[2])  # IMAGE_DIRECTORY_ENTRY_RESOURCE
        fixed = getattr(pe, "VS_FIXEDFILEINFO", None)
        if not fixed:
            return ""
        f = fixed[0]
        ms, ls = f.FileVersionMS, f.FileVersionLS
        return f"{ms >> 16}.{ms & 0xFFFF}.{ls >> 16}.{ls & 0xFFFF}"
    except Exception as exc:  # noqa: BLE001 - a broken resource tree only loses the version
        log.debug("%s: no version resource: %s", path, exc)
        return ""


def _scan_one(args: tuple[str, str, bool]) -> ScannedFile | Skip:
    return scan_file(*args)


def scan_paths(
    paths: Iterable[Path],
    algo: str = DEFAULT_ALGO,
    *,
    version: bool = False,
    workers: int | None = None,
) -> Iterator[ScannedFile | Skip]:
    """scan_file over `paths` in order, in `workers` processes (default: CPU count)."""
    jobs = ((str(p), algo, version) for p in paths)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1:
        yield from map(_scan_one, jobs)
        return
    ctx = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_scan_one, jobs, chunksize=8)
