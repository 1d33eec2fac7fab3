"""KB manifests: the files one Windows update ships, as a versioned JSON document validated by
`hpforensics/data/kb-manifest.schema.json` (documented in docs/kb-manifest.md).

`ManifestIndex` answers the engine's question "which KB ships this image?" for a patch image
(name, TimeDateStamp, SizeOfImage) or for the base image a hotpatch names (TimeDateStamp,
CheckSum).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from hpforensics.errors import InputError

log = logging.getLogger(__name__)

FORMAT = "hpforensics-kb-manifest"
VERSION = 1


@dataclass
class PEIdentity:
    timestamp: int
    size_of_image: int
    checksum: int
    machine: str = ""
    image_base: int | None = None


@dataclass
class HotpatchBaseRef:
    """A base image a hotpatch applies to, named as the loader names it."""

    timestamp: int
    checksum: int
    sequence_number: int = 0
    flags: int = 0
    functions: int = 0


@dataclass
class HotpatchRecord:
    sequence_number: int
    bases: list[HotpatchBaseRef] = field(default_factory=list)


@dataclass
class PageDigests:
    algo: str
    digests: dict[int, str]  # page RVA -> hex digest
    page_size: int = 4096
    normalisation: str = "loader mask"


@dataclass
class ManifestFile:
    name: str
    path: str = ""
    version: str | None = None
    architecture: str | None = None
    size: int | None = None
    sha256: str | None = None
    date: str | None = None
    time: str | None = None
    pe: PEIdentity | None = None
    hotpatch: HotpatchRecord | None = None
    pages: PageDigests | None = None


@dataclass
class Skipped:
    item: str
    reason: str
    error: bool = False


@dataclass
class Manifest:
    kb: str
    files: list[ManifestFile] = field(default_factory=list)
    also_kbs: list[str] = field(default_factory=list)
    title: str = ""
    release_date: str | None = None
    kind: str | None = None
    product: str | None = None
    architecture: str | None = None
    os_build: str | None = None
    source: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def kbs(self) -> list[str]:
        return [self.kb, *self.also_kbs]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        for key, value in asdict(self).items():
            if key == "files":
                value = [_file_json(f) for f in self.files]
            if value in (None, "", [], {}) and key not in ("kb", "files"):
                continue
            doc[key] = value
        return doc

    def save(self, path: Path) -> None:
        doc = self.to_json()
        validate(doc, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)


def _file_json(f: ManifestFile) -> dict[str, Any]:
    doc = {k: v for k, v in asdict(f).items() if v not in (None, "")}
    if f.pages:
        doc["pages"]["digests"] = {f"{rva:#x}": d for rva, d in sorted(f.pages.digests.items())}
    if f.pe and f.pe.image_base is None:
        doc["pe"].pop("image_base")
    return doc


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = (resources.files("hpforensics") / "data" / "kb-manifest.schema.json").read_text("utf-8")
    return json.loads(text)


def validate(doc: Any, where: str | Path = "<manifest>") -> None:
    """Raise InputError naming the first schema violation and where it is."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    error = errors[0] if errors else None
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(document)"
        raise InputError(where, f"not a valid KB manifest at {at}: {error.message}")


def load(path: Path) -> Manifest:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not JSON: {exc}", getattr(exc, "pos", None)) from None
    validate(doc, path)
    return from_json(doc)


def from_json(doc: dict[str, Any]) -> Manifest:
    files = []
    for f in doc.get("files", []):
        pe = PEIdentity(**f["pe"]) if f.get("pe") else None
        hp = None
        if f.get("hotpatch"):
            hp = HotpatchRecord(f["hotpatch"]["sequence_number"],
                                [HotpatchBaseRef(**b) for b in f["hotpatch"]["bases"]])
        pages = None
        if f.get("pages"):
            p = f["pages"]
            pages = PageDigests(p["algo"], {int(k, 16): v for k, v in p["digests"].items()},
                                p.get("page_size", 4096), p.get("normalisation", ""))
        plain = {k: v for k, v in f.items() if k not in ("pe", "hotpatch", "pages")}
        files.append(ManifestFile(**plain, pe=pe, hotpatch=hp, pages=pages))
    top = {k: v for k, v in doc.items() if k not in ("format", "version", "files", "skipped")}
    skipped = [Skipped(**s) for s in doc.get("skipped", [])]
    return Manifest(files=files, skipped=skipped, **top)


def manifest_paths(paths: Iterable[Path]) -> list[Path]:
    """Manifest files named directly, plus every *.json in folders named that is a manifest
    (other JSON beside them, such as chain-of-custody sidecars, is passed over)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.glob("*.json")):
                if _looks_like_manifest(f):
                    out.append(f)
                else:
                    log.debug("%s: not a KB manifest, passed over", f)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(p, "no such file or directory")
    return out


def _looks_like_manifest(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return FORMAT.encode() in head


__all__ = ["Manifest", "ManifestFile", "PEIdentity", "HotpatchRecord", "HotpatchBaseRef",
           "PageDigests", "Skipped", "load", "validate"]
