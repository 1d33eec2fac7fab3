"""Reading, validating and storing calendar CSV files (built-in and user-supplied).

A user CSV has the built-in columns; `product`, `month`, `kb` and `kind` are required, the rest
optional. Lines starting with '#' are comments. A bad row is a user error naming the line.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
from importlib import resources
from pathlib import Path

from hpforensics.errors import InputError
from hpforensics.kb.calendar import (
    Release,
    ReleaseKind,
    merge,
    normalize_build,
    row_key,
    normalize_kb,
    parse_month,
)

log = logging.getLogger(__name__)

COLUMNS = ("product", "month", "kb", "build", "kind", "date", "verified", "source", "note")
REQUIRED = ("product", "month", "kb", "kind")
USER_FILE = "calendar.csv"
_PRODUCT_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,40}$")
_TRUE = {"yes", "true", "1", "y"}
_FALSE = {"no", "false", "0", "n", ""}


def data_dir() -> Path:
    """Where user data lives: $HPF_DATA_DIR, else $XDG_DATA_HOME/hpforensics, else
    ~/.local/share/hpforensics (tests set HPF_DATA_DIR so they never touch $HOME)."""
    env = os.environ.get("HPF_DATA_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "hpforensics"


def user_calendar_path() -> Path:
    return data_dir() / USER_FILE


def _data_text(name: str) -> str:
    return (resources.files("hpforensics") / "data" / name).read_text(encoding="utf-8")


def read_builtin() -> tuple[list[Release], dict[str, str]]:
    releases = parse_rows(_data_text("calendar.csv"), "calendar.csv (built-in)")
    sources = {
        row["id"]: (f"{row['title']} <{row['url']}>" if row["url"] else row["title"])
        for row in csv.DictReader(io.StringIO(_data_text("calendar_sources.csv")))
    }
    return releases, sources


def read_user() -> list[Release]:
    path = user_calendar_path()
    if not path.is_file():
        return []
    return read_csv(path)


def read_csv(path: Path) -> list[Release]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, "not UTF-8 text", exc.start) from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    return parse_rows(text, str(path), default_source=f"user:{Path(path).name}")


def parse_rows(text: str, where: str, default_source: str = "") -> list[Release]:
    """Validate every row; the first bad one raises InputError naming its line."""
    lines = text.splitlines()
    # Comment lines are dropped but counted, so reported line numbers match the file.
    numbered = [
        (i + 1, line) for i, line in enumerate(lines)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise InputError(where, "no header row")
    reader = csv.reader(line for _, line in numbered)
    header_no = numbered[0][0]
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(where, f"line {header_no}: header lacks column(s) {', '.join(missing)}")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InputError(where, f"line {header_no}: unknown column(s) {', '.join(unknown)}")
    out: list[Release] = []
    for (line_no, _), cells in zip(numbered[1:], reader):
        if len(cells) > len(header):
            raise InputError(where, f"line {line_no}: {len(cells)} cells for {len(header)} columns")
        row = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        try:
            out.append(_release(row, default_source))
        except ValueError as exc:
            raise InputError(where, f"line {line_no}: {exc}") from None
    return out


def _release(row: dict[str, str], default_source: str) -> Release:
    product = row["product"].lower()
    if not _PRODUCT_RE.match(product):
        raise ValueError(f"bad product {row['product']!r}")
    month = row["month"]
    year, mon = parse_month(month)
    kb = normalize_kb(row["kb"]) or ""
    marker = not row["kb"] and row["kind"].lower() in (ReleaseKind.BASELINE, ReleaseKind.HOTPATCH)
    if not kb and not marker:
        raise ValueError(f"bad KB {row['kb']!r} (expected e.g. KB5052105; empty only for a "
                         "baseline or hotpatch month whose KB is not known)")
    if marker and row.get("build"):
        raise ValueError("a build without a KB (leave both empty for a month whose KB is unknown)")
    build = ""
    if row.get("build"):
        build = normalize_build(row["build"]) or ""
        if not build:
            raise ValueError(f"bad build {row['build']!r} (expected e.g. 26100.3107)")
    try:
        kind = ReleaseKind(row["kind"].lower())
    except ValueError:
        choices = ", ".join(k.value for k in ReleaseKind)
        raise ValueError(f"bad kind {row['kind']!r} (one of {choices})") from None
    date = None
    if row.get("date"):
        try:
            date = dt.date.fromisoformat(row["date"])
        except ValueError:
            raise ValueError(f"bad date {row['date']!r} (expected YYYY-MM-DD)") from None
        # An update dated in another month is almost always a typo in the month column,
        # except out-of-band fixes released in the first days of the next month.
        if (date.year, date.month) != (year, mon) and not kind.value.startswith("out-of-band"):
            raise ValueError(f"date {date} is not in month {month}")
    verified_text = row.get("verified", "").lower()
    if verified_text not in _TRUE | _FALSE:
        raise ValueError(f"bad verified {row['verified']!r} (yes or no)")
    return Release(
        product=product,
        month=f"{year:04d}-{mon:02d}",
        kb=kb,
        build=build,
        kind=kind,
        date=date,
        source=row.get("source") or default_source,
        note=row.get("note", ""),
        verified=verified_text in _TRUE,
    )


def write_csv(path: Path, releases: list[Release]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in releases:
            w.writerow([
                r.product, r.month, r.kb, r.build, r.kind.value,
                r.date.isoformat() if r.date else "", "yes" if r.verified else "no",
                r.source, r.note,
            ])
    tmp.replace(path)


def update_user_calendar(source: Path) -> tuple[Path, int, int]:
    """Validate `source` and merge it into the user calendar (new rows win).
    Returns (stored path, rows added, rows replaced)."""
    return store_user_rows(read_csv(source))


def store_user_rows(new: list[Release]) -> tuple[Path, int, int]:
    """Merge rows into the user calendar (new rows win): (stored path, added, replaced)."""
    path = user_calendar_path()
    old = read_user()
    old_keys = {row_key(r) for r in old}
    replaced = sum(row_key(r) in old_keys for r in new)
    write_csv(path, sorted(merge(old, new), key=lambda r: (r.product, r.month, r.kb)))
    log.info("user calendar %s: %d added, %d replaced", path, len(new) - replaced, replaced)
    return path, len(new) - replaced, replaced
