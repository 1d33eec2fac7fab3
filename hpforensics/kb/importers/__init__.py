"""Importers that turn what Microsoft publishes (or what an update leaves on disk) into a KB
manifest: `msfileinfo` (file-information CSV), `directory` (a folder of binaries),
`components` (component manifests and `.mum` package XML). `import_source` picks one."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from hpforensics.errors import InputError, UsageError
from hpforensics.kb.calendar import Calendar, normalize_kb
from hpforensics.kb.manifest import Manifest
from hpforensics.kb.importers.directory import directory_manifest
from hpforensics.kb.importers.msfileinfo import import_csv
from hpforensics.kb.importers.components import components_manifest

log = logging.getLogger(__name__)


def import_source(source: Path, kbs: Sequence[str] = (), *, pages: bool = True,
                  workers: int | None = None, calendar: Calendar | None = None) -> Manifest:
    """A manifest for SOURCE: a .csv file, a .mum/.manifest file, or a folder of binaries."""
    kb_list = []
    for kb in kbs:
        norm = normalize_kb(kb)
        if not norm:
            raise UsageError(f"--kb: not a KB number: {kb!r}")
        kb_list.append(norm)
    source = Path(source)
    if not source.exists():
        raise InputError(source, "no such file or directory")
    suffix = source.suffix.lower()
    if source.is_dir():

        manifest = directory_manifest(source, kb_list or [""], pages=pages, workers=workers)
    elif suffix == ".csv":

        manifest = import_csv(source, kb_list)
    elif suffix in (".mum", ".manifest", ".xml"):

        manifest = components_manifest([source], kb_list)
    else:
        raise InputError(source, "unknown source: give a .csv file information list, a .mum or "
                                 ".manifest file, or a folder of binaries")
    if not manifest.kb:
        raise UsageError(f"{source}: no KB found in the source; name it with --kb")
    fill_from_calendar(manifest, calendar or Calendar.default())
    return manifest


def fill_from_calendar(manifest: Manifest, calendar: Calendar) -> None:
    """Release date, kind, product and OS build from the calendar, where the source lacks them."""
    release = calendar.lookup_kb(manifest.kb)
    if release is None:
        log.info("%s is not in the release calendar; date and kind left empty", manifest.kb)
        return
    if not manifest.release_date and release.date:
        manifest.release_date = release.date.isoformat()
    manifest.kind = manifest.kind or release.kind.value
    manifest.product = manifest.product or release.product
    manifest.os_build = release.build or manifest.os_build
    if not manifest.title:
        manifest.title = f"{release.month} {release.kind.value} {manifest.kb}" + (
            f" (OS Build {release.build})" if release.build else "")
