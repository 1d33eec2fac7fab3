"""Which KB ships an image: an index over any number of KB manifests.

Several updates ship the same unchanged file, so an image maps to a list of KBs, earliest
release first; `kb_for` answers the earliest (the update that introduced that image).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from hpforensics.kb.manifest import Manifest, ManifestFile, load, manifest_paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shipped:
    kb: str
    release_date: str
    file: ManifestFile


class ManifestIndex:
    def __init__(self, manifests: Iterable[Manifest] = ()) -> None:
        self.manifests: list[Manifest] = []
        self._by_image: dict[tuple[str, int, int], list[Shipped]] = {}
        self._by_name: dict[str, list[Shipped]] = {}
        self._by_base: dict[tuple[int, int], list[Shipped]] = {}  # hotpatch base -> patch files
        self._by_identity: dict[tuple[int, int], list[Shipped]] = {}  # (timestamp, checksum)
        for m in manifests:
            self.add(m)

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> "ManifestIndex":
        """Manifest files, or folders of them (*.json)."""
        return cls(load(p) for p in manifest_paths(map(Path, paths)))

    def add(self, m: Manifest) -> None:
        self.manifests.append(m)
        for f in m.files:
            for kb in m.kbs:
                s = Shipped(kb, m.release_date or "9999-99-99", f)
                self._by_name.setdefault(f.name.lower(), []).append(s)
                if f.pe:
                    key = (f.name.lower(), f.pe.timestamp, f.pe.size_of_image)
                    self._by_image.setdefault(key, []).append(s)
                    self._by_identity.setdefault((f.pe.timestamp, f.pe.checksum), []).append(s)
                for base in f.hotpatch.bases if f.hotpatch else []:
                    self._by_base.setdefault((base.timestamp, base.checksum), []).append(s)
        for table in (self._by_name, self._by_image, self._by_base, self._by_identity):
            for rows in table.values():
                rows.sort(key=lambda s: (s.release_date, s.kb))

    def __len__(self) -> int:
        return len(self.manifests)

    # -- the engine's questions --------------------------------------------------------------
    def kb_for(self, name: str, timestamp: int, size_of_image: int) -> str | None:
        """KB that ships the image `name` with this TimeDateStamp and SizeOfImage (a patch image
        or a base image), earliest release first; None when no manifest lists it."""
        rows = self._by_image.get((_base_name(name), timestamp, size_of_image))
        return rows[0].kb if rows else None

    def kbs_for(self, name: str, timestamp: int, size_of_image: int) -> list[str]:
        rows = self._by_image.get((_base_name(name), timestamp, size_of_image), [])
        return _unique(s.kb for s in rows)

    def kb_for_base(self, timestamp: int, checksum: int) -> str | None:
        """KB that ships the base image a hotpatch names (IMAGE_HOT_PATCH_BASE's
        OriginalTimeDateStamp + OriginalCheckSum)."""
        rows = self._by_identity.get((timestamp, checksum))
        return rows[0].kb if rows else None

    def patches_for_base(self, timestamp: int, checksum: int) -> list[Shipped]:
        """Hotpatch images (and their KBs) that apply to this base image."""
        return list(self._by_base.get((timestamp, checksum), []))

    def kb_for_name(self, name: str) -> str | None:
        """By file name alone (all the engine knows of a patch image's path): the KB when every
        manifest that lists the name agrees, else None."""
        kbs = _unique(s.kb for s in self._by_name.get(_base_name(name), []))
        return kbs[0] if len(kbs) == 1 else None

    def __call__(self, path: str) -> str | None:
        """The engine's KbLookup signature: patch image path -> KB."""
        return self.kb_for_name(path)


def _base_name(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1].lower()


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
