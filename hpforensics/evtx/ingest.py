"""From what the user names (files, folders, zip archives, triage collections) to inputs.

A triage collection (KAPE, Velociraptor, CyLR) keeps a device's logs under
`<collection>/<drive>/Windows/System32/winevt/Logs/`; the collection's folder or archive name
is the device name to use when a record has no Computer field. Zip members are copied to a
temporary file one at a time (the parsers want a seekable file; memory stays flat), and only
when what they expand to is bounded (`member_refusal`): a 1 GiB member of zeros packs into
1 MiB, and a larger one would fill the disk.
"""
from __future__ import annotations

import contextlib
import logging
import lzma
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

from hpforensics.errors import InputError, UsageError
from hpforensics.evtx.formats import kind_of, sniff
from hpforensics.evtx.hive import is_hive_path
from hpforensics.evtx.hive_log import LOG_SUFFIXES
from hpforensics.evtx.registry import ARTIFACT
from hpforensics.outpaths import safe_join
from hpforensics.textsafe import clean, shown

log = logging.getLogger(__name__)

# Folder names collectors put between the collection root and the drive.
_WRAPPERS = {"uploads", "auto", "ntfs", "mft", "file", "lazy_ntfs", "vss", "files", "collection",
             "triage", "evidence", "kape", "output", "tout", "target"}
# Folders between a registry input and its collection (Velociraptor's results, a triage kit's)
_NOT_A_DEVICE = _WRAPPERS | {"results", "registry", "reg"}
_DRIVE = re.compile(r"^(?:[a-z](?::|%3a|_drive)?|%5c%5c\.%5c[a-z]%3a|\\\\\.\\[a-z]:)$", re.I)
_COLLECTION_NAME = re.compile(
    r"^(?:Collection-)?(?P<host>.+?)"
    r"(?:[-_]\d{4}-?\d{2}-?\d{2}(?:[T_-]?\d{2}[-:_]?\d{2}[-:_]?\d{2}Z?)?)?$")


@dataclass(frozen=True)
class InputItem:
    source: str  # what reports call it: a path, or "archive.zip!member/path"
    path: str  # file on disk (the archive, for a member)
    member: str  # member inside the archive, '' for plain files
    kind: str  # evtx / xml / json / etl / registry (results, .reg, hives)
    device_hint: str  # collection-derived device name ('' when not a collection)


def device_from_parts(parts: Sequence[str], fallback: str = "") -> str:
    """The collection (device) name from a log's path components, e.g.
    ('HOST1', 'C', 'Windows', 'System32', 'winevt', 'Logs', 'System.evtx') -> 'HOST1'."""
    lowered = [p.lower() for p in parts]
    for i in range(len(lowered) - 1):
        if (lowered[i + 1] == "windows" and lowered[i + 2:i + 3] == ["system32"]
                and _DRIVE.match(lowered[i])):
            for name in reversed(parts[:i]):
                if name.lower() not in _WRAPPERS and not _DRIVE.match(name):
                    return clean_collection_name(name)
            return clean_collection_name(fallback) if fallback else ""
    return ""


def clean_collection_name(name: str) -> str:
    stem = re.sub(r"\.(zip|7z|tar|tgz|tar\.gz)$", "", name, flags=re.I)
    m = _COLLECTION_NAME.match(stem)
    return m.group("host") if m else stem


def registry_device(parts: Sequence[str], fallback: str = "") -> str:
    """The device of a registry input: its collection's name, found above the result folders
    ('Collection-HOST-<time>/results/...', '<zip>!results/...', 'HOST/registry/x.reg')."""
    found = device_from_parts(parts)
    if found:
        return found
    for name in reversed(parts[:-1]):
        low = name.lower()
        if name.strip("/\\") and low not in _NOT_A_DEVICE and not low.startswith(ARTIFACT):
            return clean_collection_name(name)
    return clean_collection_name(fallback) if fallback else ""


def _sniff(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"PK\x03\x04"):
        return "zip"
    return sniff(path, head)


def discover(paths: Sequence[str | os.PathLike[str]]) -> list[InputItem]:
    """Every log under the given paths, in a stable order; missing paths are a UsageError."""
    items: list[InputItem] = []
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
        if p.is_dir():
            for file in _files_under(p):
                kind = "zip" if file.suffix.lower() == ".zip" else kind_of(str(file))
                if kind:
                    items.extend(_items_for(file, kind))
        elif not stat.S_ISREG(p.stat().st_mode):
            # a FIFO, device or socket (or a symlink to one) is never opened (a FIFO blocks the
            # open, /dev/zero never ends): an input that read_item refuses with one warning
            items.append(InputItem(shown(p), str(p), "", kind_of(p.name) or "special", ""))
        else:
            kind = "zip" if p.suffix.lower() == ".zip" else (kind_of(p.name) or _sniff(p))
            if kind is None:
                raise InputError(p, "not an event log (.evtx), export (.xml/.json), trace (.etl), "
                                    "registry export (.reg), registry hive or zip archive")
            items.extend(_items_for(p, kind))
    return items


def _files_under(root: Path) -> list[Path]:
    """Every file under `root`, sorted: sorted(f for f in root.rglob("*") if f.is_file())
    (symlinked folders are not entered either) through os.walk, ~5x faster on 1,800 logs.
    FIFOs, devices and sockets (and symlinks to them) are listed too, not skipped unseen:
    one named as a log is refused by read_item with a warning, never opened."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            try:
                mode = os.stat(path).st_mode  # stat, not open: never blocks
            except OSError:  # a dangling symlink
                continue
            if not stat.S_ISDIR(mode):
                found.append(Path(path))
    return sorted(found)


def _items_for(file: Path, kind: str) -> list[InputItem]:
    if kind != "zip":
        parts = file.absolute().parts  # no resolve(): one lstat per part
        hint = registry_device(parts) if kind == "registry" else device_from_parts(parts)
        # `source` and the device are shown in every output: a name that is not UTF-8 is
        # shown with its undecodable bytes escaped; `path` keeps the bytes to open
        return [InputItem(shown(file), str(file), "", kind, clean(hint))]
    if not stat.S_ISREG(file.stat().st_mode):  # refused by read_item; ZipFile would block on it
        return [InputItem(shown(file), str(file), "", kind, "")]
    try:
        with zipfile.ZipFile(file) as zf:
            names = sorted(n for n in zf.namelist() if not n.endswith("/") and kind_of(n))
    except _ARCHIVE_ERRORS as exc:
        raise InputError(file, f"not a readable zip archive ({exc})") from None
    out = []
    for name in names:
        member_parts = [file.name, *PurePosixPath(name.replace("\\", "/")).parts]
        kind = kind_of(name) or ""
        hint = (registry_device(member_parts, file.name) if kind == "registry"
                else device_from_parts(member_parts, fallback=file.name))
        out.append(InputItem(f"{shown(file)}!{clean(name)}", str(file), name, kind, clean(hint)))
    return out


@contextlib.contextmanager
def local_path(item: InputItem, warnings: list[str] | None = None) -> Iterator[str]:
    """A path the parsers can open: the file itself, or a temporary copy of a zip member.
    `warnings` gets a line for each companion member (a hive's logs) refused."""
    if not item.member:
        yield item.path
        return
    try:
        zf = zipfile.ZipFile(item.path)  # read again: the archive may differ from discover's
    except _ARCHIVE_ERRORS as exc:
        raise InputError(item.source, f"not a readable zip archive ({exc})") from None
    with zf, tempfile.TemporaryDirectory(prefix="hpf-") as tmp:
        member = PurePosixPath(item.member.replace("\\", "/"))
        # the member name is evidence: one safe component inside the scratch folder
        target = safe_join(tmp, member.name)
        info = zf.getinfo(item.member)
        why = member_refusal(info, tmp)
        if why:
            raise InputError(item.source, why, offset=info.header_offset)
        try:
            _copy_member(zf, item.member, str(target))
        except _MEMBER_ERRORS as exc:
            raise InputError(item.source, f"cannot extract from the archive ({exc})") from None
        if item.kind == "registry" and is_hive_path(member.parts):  # not a .reg or result set
            _extract_logs(zf, item, str(target), warnings)
        yield str(target)


# What a damaged archive raises as it is opened or a member read: a bad CRC or header
# (BadZipFile), a corrupt deflate / lzma stream (zlib.error, LZMAError; bzip2's is an
# OSError), a compression method or "zip file version" zipfile does not know
# (NotImplementedError), an encrypted member (RuntimeError), a name flagged UTF-8 that is not,
# in the central directory or in a member's local header (UnicodeDecodeError, a ValueError).
# fuzz_archive found the zlib.error, the version and the local-header name.
_MEMBER_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError,
                  NotImplementedError, RuntimeError, ValueError)
_ARCHIVE_ERRORS = _MEMBER_ERRORS

# A member bigger than RATIO_FLOOR that packs more than MAX_RATIO:1 is not extracted. Real
# event logs pack 8:1 to 60:1 (the shared and sample logs); 1 GiB of zeros packs 1000:1. A
# log that large and that empty holds almost nothing; the warning names it. A bound on the
# inflate ratio is the usual zip-bomb check (Apache POI's ZipSecureFile.setMinInflateRatio,
# https://poi.apache.org/apidocs/org/apache/poi/openxml4j/util/ZipSecureFile.html; Sonar rule
# S5042, https://rules.sonarsource.com/python/rspec-5042); 100:1 is this project's choice.
MAX_RATIO = 100
RATIO_FLOOR = 64 << 20
FREE_RESERVE = 256 << 20  # left free in the scratch folder after a member is copied there


def member_refusal(info: zipfile.ZipInfo, scratch: str, free: int | None = None) -> str:
    """Why an archive member must not be copied out ('' when it may). The declared size is
    what zipfile will write at most (it stops reading there), so it bounds the copy."""
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > RATIO_FLOOR and size > MAX_RATIO * packed:
        return (f"expands to {size:,} bytes from {packed:,} ({size // packed}:1, more than "
                f"{MAX_RATIO}:1): not extracted (a decompression bomb, or a log that is "
                "nearly empty)")
    if free is None:
        free = shutil.disk_usage(scratch).free
    if size > free - FREE_RESERVE:
        return (f"expands to {size:,} bytes, more than the scratch folder can hold "
                f"({free:,} bytes free, {FREE_RESERVE >> 20} MiB kept free): not extracted")
    return ""


def _copy_member(zf: zipfile.ZipFile, name: str, dest: str) -> None:
    """Copy one member to `dest`, read-only (the copy stands for the evidence)."""
    with zf.open(name) as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.chmod(dest, 0o400)


def _extract_logs(zf: zipfile.ZipFile, item: InputItem, target: str,
                  warnings: list[str] | None) -> None:
    """A hive's transaction logs (member + .LOG1/.LOG2/.LOG, any case) copied beside its
    temporary copy, under the same suffixes, so hive_log.py finds them there."""
    want = {item.member.lower() + s for s in LOG_SUFFIXES}
    for name in zf.namelist():
        if name.lower() not in want:
            continue
        info = zf.getinfo(name)
        why = member_refusal(info, os.path.dirname(target))
        if why:  # the hive is read without this log
            if warnings is not None:
                warnings.append(str(InputError(f"{item.path}!{name}", why, info.header_offset)))
            continue
        try:
            _copy_member(zf, name, target + name[len(item.member):])
        except _MEMBER_ERRORS as exc:
            log.debug("%s!%s not extracted: %s", item.path, name, exc)  # read as not there
