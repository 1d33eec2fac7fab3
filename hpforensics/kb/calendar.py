"""Release calendar of hotpatch-capable Windows: which KB / build is a baseline, a hotpatch,
an out-of-band update or a standard cumulative update.

No event log says "this was a hotpatch"; the only way to classify an installed update is to match
its KB number or OS build against this calendar. The data ships with the package
(`hpforensics/data/calendar.csv`, one source per row) and a user CSV can extend or override it
(`hpforensics calendar update FILE`). Months missing from the data fall back to Microsoft's
published cadence, which is code (`cadence_kind`), so a new month is still classified.
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

log = logging.getLogger(__name__)

WINDOWS11_24H2 = "windows11-24h2"
WINDOWS11_25H2 = "windows11-25h2"
WINDOWS11_26H2 = "windows11-26h2"
WINDOWS_SERVER_2025 = "windows-server-2025"
# Order matters: when one KB is shared by several products, lookups return the first.
PRODUCTS = (WINDOWS11_24H2, WINDOWS_SERVER_2025, WINDOWS11_25H2, WINDOWS11_26H2)
# First month each product received hotpatches; earlier months are plain standard updates.
# 26H2 (released 2026-09-29) is eligible as "Windows 11, version 24H2 or later"; its first
# baseline month, October 2026, is inferred (docs/calendar.md).
HOTPATCH_START = {
    WINDOWS11_24H2: "2024-11", WINDOWS_SERVER_2025: "2024-11", WINDOWS11_25H2: "2025-10",
    WINDOWS11_26H2: "2026-10",
}
# The OS build line of each product (Server 2025 shares 26100 with 24H2; its 2026 builds are
# 26100.32xxx and up, see SERVER_REVISION_FLOOR).
BUILD_MAJOR = {WINDOWS11_24H2: 26100, WINDOWS_SERVER_2025: 26100, WINDOWS11_25H2: 26200,
               WINDOWS11_26H2: 26300}
SERVER_REVISION_FLOOR = 32000
BASELINE_MONTHS = frozenset({1, 4, 7, 10})

_KB_RE = re.compile(r"^(?:KB)?(\d{6,8})$", re.IGNORECASE)
_BUILD_RE = re.compile(r"^(?:10\.0\.)?(\d{5})\.(\d{1,6})$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class ReleaseKind(str, enum.Enum):
    BASELINE = "baseline"  # cumulative update with restart; the next hotpatches build on it
    HOTPATCH = "hotpatch"  # security-only, applied in memory, no restart
    OUT_OF_BAND = "out-of-band"  # unscheduled cumulative update (restart)
    OUT_OF_BAND_HOTPATCH = "out-of-band-hotpatch"  # unscheduled hotpatch
    STANDARD = "standard"  # the ordinary monthly LCU of a hotpatch month: takes a device off track

    def __str__(self) -> str:
        return self.value

    @property
    def is_hotpatch(self) -> bool:
        return self in (ReleaseKind.HOTPATCH, ReleaseKind.OUT_OF_BAND_HOTPATCH)

    @property
    def needs_restart(self) -> bool:
        return not self.is_hotpatch


@dataclass(frozen=True)
class Release:
    product: str
    month: str  # 'YYYY-MM' of the servicing month the update belongs to
    kb: str  # 'KB5052105'; '' for a month whose KB is not known (a marker row)
    build: str  # '26100.3107' ('' when not known)
    kind: ReleaseKind
    date: dt.date | None  # release date; Patch Tuesday for scheduled updates
    source: str  # id in calendar_sources.csv, 'user:<file>' or 'cadence rule'
    note: str = ""
    verified: bool = True  # False: secondary source or inferred, see note

    @property
    def is_marker(self) -> bool:
        """A baseline/hotpatch month the data knows of but whose KB is not known."""
        return not self.kb

    @property
    def year(self) -> int:
        return int(self.month[:4])

    @property
    def month_number(self) -> int:
        return int(self.month[5:7])

    @property
    def off_cadence(self) -> bool:
        """A baseline in a planned hotpatch month (or the reverse), e.g. Windows 11 June 2026."""
        planned = cadence_kind(self.year, self.month_number)
        return self.kind in _MONTH_DEFINING and self.kind != planned


# -- normalisation -------------------------------------------------------------------------

def normalize_kb(value: str) -> str | None:
    """'kb5052105' / '5052105' / 'KB5052105' -> 'KB5052105'; None when it is not a KB number."""
    m = _KB_RE.match(value.strip())
    return f"KB{m.group(1)}" if m else None


def normalize_build(value: str) -> str | None:
    """'10.0.26100.3107' / '26100.3107' -> '26100.3107'; None when it is not an OS build."""
    m = _BUILD_RE.match(value.strip())
    return f"{m.group(1)}.{int(m.group(2))}" if m else None


def parse_month(value: str) -> tuple[int, int]:
    m = _MONTH_RE.match(value.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"not a month (YYYY-MM): {value!r}")
    return int(m.group(1)), int(m.group(2))


def month_str(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def patch_tuesday(year: int, month: int) -> dt.date:
    """Second Tuesday of the month: the scheduled release day ("Patch Tuesday")."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(1 - first.weekday()) % 7 + 7)


def cadence_kind(year: int, month: int) -> ReleaseKind:
    """Microsoft's published rule: baselines in January, April, July, October; hotpatches in
    the two months between."""
    if not 1 <= month <= 12:
        raise ValueError(f"month out of range: {month}")
    return ReleaseKind.BASELINE if month in BASELINE_MONTHS else ReleaseKind.HOTPATCH


def iter_months(start: str, end: str) -> Iterator[str]:
    y, m = parse_month(start)
    ey, em = parse_month(end)
    while (y, m) <= (ey, em):
        yield month_str(y, m)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


# -- the calendar --------------------------------------------------------------------------

# Kinds that say what a month *is*; out-of-band and standard updates sit beside them.
_MONTH_DEFINING = (ReleaseKind.BASELINE, ReleaseKind.HOTPATCH)


class Calendar:
    """Releases indexed by KB, build and (product, month)."""

    def __init__(self, releases: Iterable[Release], sources: dict[str, str] | None = None) -> None:
        self._releases: list[Release] = sorted(
            releases, key=lambda r: (_product_rank(r.product), r.month, r.date or dt.date.max, r.kb)
        )
        self.sources: dict[str, str] = dict(sources or {})
        self._by_kb: dict[str, list[Release]] = {}
        self._by_build: dict[str, list[Release]] = {}
        self._by_month: dict[tuple[str, str], list[Release]] = {}
        for r in self._releases:
            if r.kb:
                self._by_kb.setdefault(r.kb, []).append(r)
            if r.build:
                self._by_build.setdefault(r.build, []).append(r)
            self._by_month.setdefault((r.product, r.month), []).append(r)

    # construction
    @classmethod
    def builtin(cls) -> "Calendar":
        # lazy: calendar_io imports calendar (a module-level import would be a cycle)
        from hpforensics.kb.calendar_io import read_builtin

        releases, sources = read_builtin()
        return cls(releases, sources)

    @classmethod
    def default(cls) -> "Calendar":
        """Built-in data, overridden and extended by the user's calendar (if any)."""
        # lazy: calendar_io imports calendar (a module-level import would be a cycle)
        from hpforensics.kb.calendar_io import read_builtin, read_user

        releases, sources = read_builtin()
        user = read_user()
        return cls(merge(releases, user), sources)

    @classmethod
    def from_csv(cls, *paths: Path, builtin: bool = True) -> "Calendar":
        # lazy: calendar_io imports calendar (a module-level import would be a cycle)
        from hpforensics.kb.calendar_io import read_builtin, read_csv

        releases, sources = read_builtin() if builtin else ([], {})
        for p in paths:
            releases = merge(releases, read_csv(p))
        return cls(releases, sources)

    # queries
    def __len__(self) -> int:
        return len(self._releases)

    def __iter__(self) -> Iterator[Release]:
        return iter(self._releases)

    @property
    def products(self) -> list[str]:
        return sorted({r.product for r in self._releases}, key=_product_rank)

    def lookup_kb(self, kb: str, product: str | None = None) -> Release | None:
        """The release of a KB ('KB5052105', '5052105'); the first product's row when shared."""
        found = self.lookup_kb_all(kb, product)
        return found[0] if found else None

    def lookup_kb_all(self, kb: str, product: str | None = None) -> list[Release]:
        key = normalize_kb(kb) if kb else None
        rows = self._by_kb.get(key, []) if key else []
        return [r for r in rows if product is None or r.product == product]

    def lookup_build(self, build: str, product: str | None = None) -> Release | None:
        """The release that produces an OS build ('26100.3107', '10.0.26100.3107')."""
        key = normalize_build(build) if build else None
        rows = self._by_build.get(key, []) if key else []
        rows = [r for r in rows if product is None or r.product == product]
        return rows[0] if rows else None

    def lookup(self, kb_or_build: str, product: str | None = None) -> Release | None:
        """Either a KB number or an OS build."""
        if normalize_kb(kb_or_build):
            return self.lookup_kb(kb_or_build, product)
        return self.lookup_build(kb_or_build, product)

    def classify(self, value: str, product: str | None = None) -> Classification:
        return classify(self, value, product)

    def releases(
        self, product: str | None = None, start: str | None = None, end: str | None = None
    ) -> list[Release]:
        """Rows in product/month order, `start`/`end` inclusive 'YYYY-MM'."""
        if start:
            parse_month(start)
        if end:
            parse_month(end)
        return [
            r
            for r in self._releases
            if (product is None or r.product == product)
            and (not start or r.month >= start)
            and (not end or r.month <= end)
        ]

    def month_releases(self, product: str, year: int, month: int) -> list[Release]:
        return list(self._by_month.get((product, month_str(year, month)), []))

    def month_kind(self, product: str, year: int, month: int) -> ReleaseKind:
        """What the month is for the product: the data's baseline/hotpatch row first, then the
        cadence rule. Before the product's first hotpatch month every month is `standard`."""
        for r in self._by_month.get((product, month_str(year, month)), []):
            if r.kind in _MONTH_DEFINING:
                return r.kind
        start = HOTPATCH_START.get(product)
        if start and month_str(year, month) < start:
            return ReleaseKind.STANDARD
        return cadence_kind(year, month)

    def month_release(self, product: str, year: int, month: int) -> Release:
        """The month's defining release, or a placeholder from the cadence rule (kb '')."""
        for r in self._by_month.get((product, month_str(year, month)), []):
            if r.kind in _MONTH_DEFINING:
                return r
        kind = self.month_kind(product, year, month)
        start = HOTPATCH_START.get(product)
        before = kind is ReleaseKind.STANDARD and start and month_str(year, month) < start
        return Release(
            product=product,
            month=month_str(year, month),
            kb="",
            build="",
            kind=kind,
            date=patch_tuesday(year, month),
            source="cadence rule",
            note=(f"before {product}'s first hotpatch month ({start})" if before else
                  "no data for this month; kind from the cadence rule"),
            verified=False,
        )

    def timeline(self, product: str, start: str, end: str) -> list[Release]:
        """Every data row of the product in [start, end] plus a cadence placeholder for each
        month without a baseline/hotpatch row, in month order."""
        out: list[Release] = []
        for month in iter_months(start, end):
            y, m = parse_month(month)
            rows = self._by_month.get((product, month), [])
            if not any(r.kind in _MONTH_DEFINING for r in rows):
                out.append(self.month_release(product, y, m))
            out.extend(rows)
        return out


    # what the data says of each month
    def month_state(self, product: str, year: int, month: int) -> "MonthState":
        """confirmed (a baseline/hotpatch row from Microsoft's pages), unconfirmed (one from a
        secondary source or inferred), unknown (the month is listed but its KB is not known) or
        missing (no row: only the cadence rule speaks for it)."""
        for r in self._by_month.get((product, month_str(year, month)), []):
            if r.kind in _MONTH_DEFINING:
                if r.is_marker:
                    return MonthState.UNKNOWN
                return MonthState.CONFIRMED if r.verified else MonthState.UNCONFIRMED
        return MonthState.MISSING

    def last_confirmed_month(self, product: str) -> str | None:
        """The latest month whose defining row is confirmed, or None."""
        months = [r.month for r in self._releases if r.product == product and not r.is_marker
                  and r.verified and r.kind in _MONTH_DEFINING]
        return max(months) if months else None

    def check(self, today: dt.date, products: Iterable[str] | None = None) -> list["MonthCheck"]:
        """Every month from each product's first hotpatch month to the last one released by
        `today` (its Patch Tuesday on or before it) whose row is not confirmed."""
        out: list[MonthCheck] = []
        for product in products or self.products:
            start = HOTPATCH_START.get(product) or min(r.month for r in self.releases(product))
            for month in iter_months(start, month_str(today.year, today.month)):
                y, m = parse_month(month)
                if patch_tuesday(y, m) > today:
                    continue
                state = self.month_state(product, y, m)
                if state is not MonthState.CONFIRMED:
                    out.append(MonthCheck(product, month, state, self.month_release(product, y, m)))
        return out


class MonthState(str, enum.Enum):
    CONFIRMED = "confirmed"
    UNCONFIRMED = "unconfirmed"
    UNKNOWN = "unknown"
    MISSING = "missing"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class MonthCheck:
    product: str
    month: str
    state: MonthState
    release: Release  # the defining row, the marker, or the cadence placeholder


@dataclass(frozen=True)
class Classification:
    """What a KB number or OS build is, per the calendar."""

    value: str
    release: Release | None  # the matching row, or for an unknown build the nearest earlier one
    exact: bool
    note: str

    @property
    def kind(self) -> ReleaseKind | None:
        return self.release.kind if self.release and self.exact else None


def classify(cal: "Calendar", value: str, product: str | None = None) -> Classification:
    """A KB or build: its release; for a build the calendar lacks (a preview, an unlisted
    out-of-band), the nearest earlier release of the same branch, so the month is known."""
    found = cal.lookup(value, product)
    if found:
        return Classification(value, found, True, "")
    build = normalize_build(value)
    if not build:
        what = "KB" if normalize_kb(value) else "value"
        return Classification(value, None, False, f"{what} not in the calendar")
    major, rev = (int(x) for x in build.split("."))
    earlier = [
        r for r in cal
        if r.build and (product is None or r.product == product)
        and int(r.build.split(".")[0]) == major and int(r.build.split(".")[1]) < rev
        # Server 2025's own 2026 branch (26100.32xxx) is not the client's 26100 line
        and (int(r.build.split(".")[1]) >= SERVER_REVISION_FLOOR) == (rev >= SERVER_REVISION_FLOOR)
    ]
    if not earlier:
        return Classification(value, None, False, "build not in the calendar, nothing earlier")
    near = max(earlier, key=lambda r: (int(r.build.split(".")[1]), -_product_rank(r.product)[0]))
    return Classification(value, near, False,
                          f"build not in the calendar; nearest earlier is {near.kb} ({near.build}, "
                          f"{near.month} {near.kind.value})")


def row_key(r: Release) -> tuple[str, str]:
    """What makes a row the same row: its product and KB; a marker, its product and month."""
    return (r.product, r.kb or "month:" + r.month)


def merge(base: Iterable[Release], overrides: Iterable[Release]) -> list[Release]:
    """Overrides replace rows with the same (product, KB) (markers: product and month) and add
    the rest; a marker gives way to a baseline/hotpatch row with a KB for its month."""
    merged = {row_key(r): r for r in base}
    for r in overrides:
        if row_key(r) in merged:
            log.debug("calendar row %s %s overridden from %s", r.product, r.kb, r.source)
        merged[row_key(r)] = r
    known = {(r.product, r.month) for r in merged.values()
             if not r.is_marker and r.kind in _MONTH_DEFINING}
    return [r for r in merged.values() if not (r.is_marker and (r.product, r.month) in known)]


def _product_rank(product: str) -> tuple[int, str]:
    return (PRODUCTS.index(product) if product in PRODUCTS else len(PRODUCTS), product)


def builtin_path() -> Path:
    return Path(str(resources.files("hpforensics") / "data" / "calendar.csv"))
