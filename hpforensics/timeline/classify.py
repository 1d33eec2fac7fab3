"""What kind of update an event is about, decided by KB number or OS build against the calendar.

No event says "hotpatch" (see docs/timeline.md): the KB or the build is looked up in the release
calendar (`hpforensics.kb.calendar`). A cumulative update the calendar does not list is the
ordinary monthly LCU ("standard"), which in a hotpatch month takes the device off the hotpatch
track. Everything else (Defender, MSRT, drivers, .NET) is "other".
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

from hpforensics.kb.calendar import Calendar, Release, ReleaseKind, month_str, patch_tuesday

OTHER = "other"
# Update classes: the calendar's kinds plus "other".
CLASSES = tuple(k.value for k in ReleaseKind) + (OTHER,)

_KB = re.compile(r"\bKB ?(\d{6,8})\b", re.IGNORECASE)
_BUILD_IN_TITLE = re.compile(r"\((?:OS Build )?(\d{5}\.\d{1,6})\)")
_ROLLUP_BUILD = re.compile(r"RollupFix~[^~]*~[^~]*~[^~]*~(\d{5}\.\d{1,6})", re.IGNORECASE)
_TITLE_MONTH = re.compile(r"^\s*(\d{4})-(\d{2})\b")
_CUMULATIVE = re.compile(
    r"cumulative update|security (?:monthly )?quality rollup|\bLCU\b|RollupFix", re.IGNORECASE)
_NOT_OS = re.compile(r"\.NET|Defender|Security Intelligence|Malicious Software Removal|Driver|"
                     r"Servicing Stack|Office|Silverlight|Flash", re.IGNORECASE)


def find_kb(*texts: str) -> str:
    for text in texts:
        if text:
            m = _KB.search(text)
            if m:
                return f"KB{m.group(1)}"
    return ""


def find_build(*texts: str) -> str:
    for text in texts:
        if text:
            m = _BUILD_IN_TITLE.search(text) or _ROLLUP_BUILD.search(text)
            if m:
                major, _, minor = m.group(1).partition(".")
                return f"{major}.{int(minor)}"
    return ""


@dataclass(frozen=True)
class Classification:
    update_class: str  # a ReleaseKind value or "other"
    release_month: str | None  # 'YYYY-MM' the update belongs to ('' for "other")
    release: Release | None  # the calendar row, when the KB or build is listed


def servicing_month(when: dt.datetime | None) -> str:
    """The month whose Patch Tuesday last preceded `when`: an unlisted cumulative update
    installed on 3 March belongs to February's release."""
    if when is None:
        return ""
    year, month = when.year, when.month
    if when.date() < patch_tuesday(year, month):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return month_str(year, month)


class Classifier:
    """Calendar lookups with a cache: a fleet logs the same few KBs thousands of times."""

    def __init__(self, calendar: Calendar | None = None, product: str | None = None) -> None:
        self.calendar = calendar or Calendar.default()
        self.product = product
        self._lookup = lru_cache(maxsize=4096)(self._lookup_uncached)

    def classify(self, kb: str, title: str, build: str, when: dt.datetime | None) -> Classification:
        found = self._lookup(kb, title, build)
        if found.release_month is None:  # an unlisted update without a month in its title
            return Classification(found.update_class, servicing_month(when), None)
        return found

    def _lookup_uncached(self, kb: str, title: str, build: str) -> Classification:
        cal = self.calendar
        release = (cal.lookup_kb(kb, self.product) if kb else None) or (
            cal.lookup_build(build, self.product) if build else None)
        if release is None and self.product and (kb or build):
            # a KB listed only for another product still says what kind of update it is
            release = ((cal.lookup_kb(kb) if kb else None)
                       or (cal.lookup_build(build) if build else None))
        if release is not None:
            return Classification(release.kind.value, release.month, release)
        if not kb and not title and not build:
            return Classification(OTHER, "", None)
        if title and _NOT_OS.search(title):
            return Classification(OTHER, "", None)
        if (title and _CUMULATIVE.search(title)) or (build and not title):
            m = _TITLE_MONTH.match(title or "")
            month = f"{m.group(1)}-{m.group(2)}" if m else None
            return Classification(ReleaseKind.STANDARD.value, month, None)
        return Classification(OTHER, "", None)
