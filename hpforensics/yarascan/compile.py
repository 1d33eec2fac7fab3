"""Compile rule files once, before any scanning, and cache the compiled form by content hash.

A syntax error becomes one UsageError naming the rule file and line, raised before the first
file or region is read, so a long scan never dies half way on a typo.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yara

from hpforensics.errors import UsageError

log = logging.getLogger(__name__)

RULE_SUFFIXES = (".yar", ".yara")
# yara-python reports "path(line): message" (or "line N: message" for sources)
_ERR = re.compile(r"^(?P<file>.*?)\((?P<line>\d+)\): (?P<msg>.*)$")


@dataclass
class RuleSet:
    rules: yara.Rules
    files: tuple[Path, ...]
    digest: str  # SHA-256 over the rule texts: identifies the rule set in reports

    def match(self, data: bytes) -> list[yara.Match]:
        return self.rules.match(data=data)


def _cache_dir() -> Path:
    base = os.environ.get("HPF_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "hpforensics"
    )
    return Path(base) / "yara"


def _rule_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in RULE_SUFFIXES)
            if not found:
                raise UsageError(f"{p}: no .yar/.yara rule files in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(f"{p}: no such rule file or folder")
    return files


def _namespace(path: Path, taken: set[str]) -> str:
    name = path.stem
    n, i = name, 2
    while n in taken:
        n, i = f"{name}_{i}", i + 1
    taken.add(n)
    return n


def load_rules(paths: Sequence[str | os.PathLike[str]], use_cache: bool = True) -> RuleSet:
    """Compile every rule file under `paths` (files or folders); namespace = file stem."""
    files = _rule_files(paths)
    h = hashlib.sha256(yara.__version__.encode())
    sources: dict[str, str] = {}
    taken: set[str] = set()
    for f in files:
        try:
            text = f.read_bytes()
        except OSError as exc:
            raise UsageError(f"{f}: cannot read rule file: {exc.strerror}") from None
        h.update(str(f.name).encode() + b"\0" + text + b"\0")
        sources[_namespace(f, taken)] = str(f)
    digest = h.hexdigest()
    cached = _cache_dir() / f"{digest}.yarc"
    if use_cache and cached.is_file():
        try:
            return RuleSet(yara.load(str(cached)), tuple(files), digest)
        except yara.Error:
            log.info("ignoring unreadable rule cache %s", cached)
    try:
        rules = yara.compile(filepaths=sources)
    except yara.SyntaxError as exc:
        raise UsageError(_one_line(str(exc))) from None
    except yara.Error as exc:
        raise UsageError(f"rules: {exc}") from None
    if use_cache:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            rules.save(str(tmp))
            os.replace(tmp, cached)
        except OSError:
            log.info("rule cache not writable: %s", cached.parent)
    return RuleSet(rules, tuple(files), digest)


def _one_line(message: str) -> str:
    m = _ERR.match(message.strip().splitlines()[0])
    if m:
        return f"{m['file']} line {m['line']}: {m['msg']}"
    return message.strip().splitlines()[0]
