"""Microsoft's per-KB "file information" CSV (linked from each update's support article).

Layout as published: one section per architecture, each opened by a one-cell banner such as
`Windows 11, version 24H2 LCU x64-based`, then a header row
`"File name","File version","Date","Time","File size"`, then one row per file, e.g.
`"ntdll.dll","10.0.26100.3107","04-Feb-2025","06:12","2,494,720"`. Older files use other header
spellings (`Name,Version,ModifiedTime,ModifiedTime,Size`), extra columns (`Platform`) and
"Not versioned" / "Not applicable" versions; all are accepted. A row that cannot be read is
skipped with its line number and the reason, and the import goes on.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from collections import Counter
from pathlib import Path

from hpforensics.errors import InputError
from hpforensics.kb.manifest import Manifest, ManifestFile, Skipped

log = logging.getLogger(__name__)

# header cell (lower-case, spaces collapsed) -> field
_HEADER = {
    "file name": "name", "name": "name",
    "file version": "version", "version": "version",
    "date": "date", "modifiedtime": None,  # first ModifiedTime is the date, second the time
    "time": "time",
    "file size": "size", "size": "size",
    "platform": "platform",
}
_VERSION_RE = re.compile(r"^\d+(\.\d+){1,3}$")
_NO_VERSION = {"", "not versioned", "not applicable", "n/a", "-"}
_DATE_FORMATS = ("%d-%b-%Y", "%d-%b-%y", "%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y")
_KB_IN_NAME = re.compile(r"(?:kb)?(\d{7})", re.IGNORECASE)


def arch_of(text: str) -> str | None:
    """Architecture named in a banner or Platform cell."""
    t = text.lower()
    if "arm64" in t:
        return "arm64"
    if "x64" in t or "amd64" in t:
        return "amd64"
    if "x86" in t or "32-bit" in t:
        return "x86"
    if "wow64" in t:
        return "wow64"
    return None


def _is_banner(cells: list[str]) -> bool:
    """A section title: unquoted it splits at its comma, so test the joined text; a file row
    always has a size or version cell, a title never does."""
    joined = ",".join(cells).lower()
    if any(_VERSION_RE.match(c) or c.replace(",", "").isdigit() for c in cells[1:]):
        return False
    if joined.startswith("windows") or "-based" in joined:
        return True
    return len(cells) == 1 and arch_of(joined) is not None


def _header_map(cells: list[str]) -> dict[int, str] | None:
    keys = [" ".join(c.lower().split()) for c in cells]
    if not keys or keys[0] not in ("file name", "name"):
        return None
    out: dict[int, str] = {}
    seen_modified = False
    for i, k in enumerate(keys):
        if k == "modifiedtime":
            out[i] = "time" if seen_modified else "date"
            seen_modified = True
        elif header := _HEADER.get(k):
            out[i] = header
    return out if "name" in out.values() else None


def _date(text: str) -> str | None:
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def _row(cells: list[str], columns: dict[int, str], arch: str | None) -> ManifestFile:
    """One data row; ValueError names what is wrong with it."""
    if len(cells) < len(columns):
        raise ValueError(f"{len(cells)} cells, the header has {len(columns)}")
    v = {field: cells[i].strip() for i, field in columns.items() if i < len(cells)}
    name = v.get("name", "")
    if not name:
        raise ValueError("empty file name")
    version = v.get("version", "")
    if version.lower() in _NO_VERSION:
        version = ""
    elif not _VERSION_RE.match(version):
        raise ValueError(f"bad file version {version!r}")
    size_text = re.sub(r"[,.\s\u00a0]", "", v.get("size", ""))
    if size_text and not size_text.isdigit():
        raise ValueError(f"bad file size {v.get('size')!r}")
    date = _date(v["date"]) if v.get("date") else None
    if v.get("date") and date is None:
        raise ValueError(f"bad date {v['date']!r}")
    return ManifestFile(
        name=name,
        version=version or None,
        architecture=arch_of(v["platform"]) if v.get("platform") else arch,
        size=int(size_text) if size_text else None,
        date=date,
        time=v.get("time") or None,
    )


def parse(text: str, where: str) -> tuple[list[ManifestFile], list[Skipped]]:
    files: list[ManifestFile] = []
    skipped: list[Skipped] = []
    seen: set[tuple] = set()
    columns: dict[int, str] | None = None
    arch: str | None = None
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        for cells in reader:
            line = reader.line_num
            cells = [c.strip() for c in cells]
            while cells and not cells[-1]:
                cells.pop()
            if not cells:
                continue
            header = _header_map(cells)
            if header:
                columns = header
                continue
            if _is_banner(cells):
                arch = arch_of(",".join(cells)) or arch
                continue  # section banner, e.g. "Windows 11, version 24H2 LCU x64-based"
            if columns is None:
                skipped.append(Skipped(f"{where}:{line}", "data before any header row", True))
                continue
            try:
                f = _row(cells, columns, arch)
            except ValueError as exc:
                skipped.append(Skipped(f"{where}:{line}", str(exc), True))
                continue
            key = (f.name.lower(), f.version, f.architecture, f.size)
            if key not in seen:  # the same file appears once per component that carries it
                seen.add(key)
                files.append(f)
    except csv.Error as exc:
        skipped.append(Skipped(f"{where}:{reader.line_num}", f"unreadable CSV: {exc}", True))
    if columns is None:
        raise InputError(where, "no 'File name' header row: not a Microsoft file information CSV")
    return files, skipped


def import_csv(path: Path, kbs: list[str]) -> Manifest:
    try:
        text = Path(path).read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError:
        # older files were saved as ANSI; the five bytes cp1252 leaves undefined become U+FFFD
        text = Path(path).read_text(encoding="cp1252", errors="replace")
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    files, skipped = parse(text, str(path))
    if not kbs:
        m = _KB_IN_NAME.search(Path(path).stem)
        if not m:
            raise InputError(path, "no KB given (--kb) and none in the file name")
        kbs = [f"KB{m.group(1)}"]
    archs = {f.architecture for f in files if f.architecture}
    manifest = Manifest(
        kb=kbs[0],
        also_kbs=kbs[1:],
        files=files,
        architecture=archs.pop() if len(archs) == 1 else ("multi" if archs else None),
        os_build=_common_build(files),
        source={"importer": "ms-file-info-csv", "path": str(path)},
        skipped=skipped,
    )
    return manifest


def _common_build(files: list[ManifestFile]) -> str | None:
    """The OS build most files carry (10.0.BBBBB.R -> BBBBB.R)."""
    builds = Counter(
        ".".join(f.version.split(".")[2:4]) for f in files
        if f.version and f.version.startswith("10.0.") and f.version.count(".") == 3
    )
    return builds.most_common(1)[0][0] if builds else None
