"""Servicing XML: component manifests (`*.manifest`, `<assembly>` with `<file>` entries) and
package manifests (`*.mum`, `<package identifier="KB...">`).

Only uncompressed XML is read. Manifests stored in WinSxS are usually delta-compressed
(`DCM\\x01` header) and are skipped with that reason; expand them first (e.g. with SXSEXP).
A `.mum` names the KB and its release type; component manifests list the files, their sizes
and SHA-256 digests.
"""
from __future__ import annotations

import base64
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from hpforensics.kb.calendar import normalize_kb
from hpforensics.kb.manifest import Manifest, ManifestFile, Skipped

log = logging.getLogger(__name__)

_ARCH = {"amd64": "amd64", "x86": "x86", "arm64": "arm64", "arm": "arm", "wow64": "wow64",
         "msil": "msil", "neutral": "neutral"}
_SHA256_ALGOS = (
    "http://www.w3.org/2000/09/xmldsig#sha256",
    "http://www.w3.org/2001/04/xmlenc#sha256",
)
_MAX_XML = 64 << 20


@dataclass
class ComponentManifest:
    path: Path
    name: str = ""
    version: str = ""
    architecture: str | None = None
    package_kb: str | None = None  # from a .mum's <package identifier>
    release_type: str = ""
    components: list[str] = field(default_factory=list)  # assemblies a .mum installs
    files: list[ManifestFile] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_component(path: Path) -> ComponentManifest:
    """Raises ValueError with the reason when the file cannot be read as servicing XML."""
    data = Path(path).read_bytes()
    if len(data) > _MAX_XML:
        raise ValueError("larger than 64 MiB")
    if data[:4] in (b"DCM\x01", b"PA30") or data[4:8] == b"DCM\x01":
        raise ValueError("compressed (DCM) component manifest: expand it first")
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data[:4096]:
        raise ValueError("XML with a DTD is not accepted")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    except LookupError as exc:  # an XML declaration naming an encoding Python does not know
        raise ValueError(f"not readable XML: {exc}") from None
    if _local(root.tag) != "assembly":
        raise ValueError(f"root element is <{_local(root.tag)}>, not <assembly>")
    cm = ComponentManifest(Path(path))
    ident = next((e for e in root if _local(e.tag) == "assemblyIdentity"), None)
    if ident is not None:
        cm.name = ident.get("name", "")
        cm.version = ident.get("version", "")
        cm.architecture = _ARCH.get(ident.get("processorArchitecture", "").lower())
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "package" and el.get("identifier"):
            cm.package_kb = normalize_kb(el.get("identifier", ""))
            cm.release_type = el.get("releaseType", "")
        elif tag == "component":
            sub = next((e for e in el if _local(e.tag) == "assemblyIdentity"), None)
            if sub is not None:
                cm.components.append(" ".join(
                    str(sub.get(k)) for k in ("name", "version", "processorArchitecture")))
        elif tag == "file" and el.get("name"):
            cm.files.append(_file(el, cm))
    return cm


def _file(el: ET.Element, cm: ComponentManifest) -> ManifestFile:
    digest = None
    for h in el.iter():
        if _local(h.tag) == "DigestMethod" and h.get("Algorithm") not in _SHA256_ALGOS:
            break
        if _local(h.tag) == "DigestValue" and h.text:
            try:
                raw = base64.b64decode(h.text.strip(), validate=True)
                digest = raw.hex() if len(raw) == 32 else None
            except ValueError:
                digest = None
    name = el.get("name", "").replace("/", "\\").rsplit("\\", 1)[-1]
    dest = el.get("destinationPath", "")
    size = el.get("size")
    return ManifestFile(
        name=name,
        path=(dest.rstrip("\\") + "\\" + name) if dest else name,
        version=cm.version or None,
        architecture=cm.architecture,
        size=int(size) if size and size.isdigit() else None,
        sha256=digest,
    )


def merge_components(manifest: Manifest, paths: list[Path]) -> None:
    """Add what the servicing XML says to `manifest`: KB and title from a .mum, files (or the
    missing version/hash of files already imported) from component manifests."""
    by_name: dict[str, list[ManifestFile]] = {}
    for f in manifest.files:
        by_name.setdefault(f.name.lower(), []).append(f)
    for path in paths:
        try:
            cm = parse_component(path)
        except (OSError, ValueError) as exc:
            benign = str(exc).startswith("compressed")
            manifest.skipped.append(Skipped(str(path), str(exc), not benign))
            continue
        if cm.package_kb:
            if not manifest.kb:
                manifest.kb = cm.package_kb
            elif cm.package_kb not in manifest.kbs:
                manifest.also_kbs.append(cm.package_kb)
            manifest.title = manifest.title or f"{cm.package_kb} {cm.release_type}".strip()
        for f in cm.files:
            known = [k for k in by_name.get(f.name.lower(), []) if k.size in (None, f.size)]
            if known:
                for k in known:
                    k.version = k.version or f.version
                    if k.sha256 and f.sha256 and k.sha256 != f.sha256:
                        manifest.skipped.append(Skipped(
                            f"{path}:{f.name}", f"SHA-256 in the manifest differs from {k.path}",
                            True))
            else:
                manifest.files.append(f)
                by_name.setdefault(f.name.lower(), []).append(f)


def components_manifest(paths: list[Path], kbs: list[str]) -> Manifest:
    manifest = Manifest(kb=kbs[0] if kbs else "", also_kbs=kbs[1:],
                        source={"importer": "component-manifest", "path": str(paths[0])})
    merge_components(manifest, paths)
    return manifest
