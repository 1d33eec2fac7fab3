"""Microsoft's own pages, as a user saves them, read into calendar rows.

Three kinds of page list Microsoft's updates, and a browser saves them as HTML (learn.microsoft.com
also serves Markdown, `?accept=text/markdown`):
- the Windows release-health "release information" pages (windows11-release-information,
  windows-server-release-info): per version a release-history table (Servicing option | Update
  type | Availability date | Build | KB article, update type "2026-08 B", "2026-07 OOB", "D"
  previews) and a hotpatch calendar (Month | Update type | Type | Availability date | Build |
  KB article, type "Baseline (Restart)" or "Hotpatch", future months without a KB);
- support.microsoft.com's update-history pages and the "Release notes for Hotpatch" pages,
  which list each update by its title: "August 11, 2026—Hotpatch KB5120228 (OS Build
  26100.33222)", "September 14, 2026—KB5129195 (OS Builds 26200.9457 and 26100.9457)
  Out-of-band".
Both forms become one `Page` (tables under their labels, and link/heading texts), and
`page_releases` turns it into Releases: a hotpatch-calendar row gives the month's kind (a row
without a KB is a marker: the month is known, its KB is not); a release-history "B" row is the
month's baseline in a baseline month and its standard LCU otherwise; OOB is out-of-band, C/D
previews are standard. Only the products the calendar tracks are read (Windows 11 24H2, 25H2,
26H2 and Windows Server 2025); a Server 2025 row is told from a client row by its page and
label, never by the build number alone.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from hpforensics.errors import InputError
from hpforensics.kb.calendar import (BUILD_MAJOR, SERVER_REVISION_FLOOR, WINDOWS11_24H2,
                                     WINDOWS11_25H2, WINDOWS11_26H2, WINDOWS_SERVER_2025,
                                     Calendar, Release, ReleaseKind, month_str, normalize_build)
from hpforensics.kb.calendar import row_key
from hpforensics.kb.calendar_io import store_user_rows

_KB = re.compile(r"\bKB(\d{6,8})\b")
_UPDATE_TYPE = re.compile(r"^(\d{4})[-.](\d{2})\s+([A-Z]+)")
_VERSION_LABEL = re.compile(r"\bVersion (\d\dH\d) \(OS build (\d{5})\)", re.IGNORECASE)
_SERVER_LABEL = re.compile(r"\bWindows Server (\d{4})\b.*\(OS build (\d{5})\)", re.IGNORECASE)
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_TITLE = re.compile(
    r"(?P<mon>" + "|".join(m.capitalize() for m in _MONTHS) + r") (?P<day>\d{1,2}), (?P<year>\d{4})"
    r"\s*[—–-]\s*(?P<hot>Hotpatch\s+)?KB(?P<kb>\d{6,8})\s*\(OS Builds? (?P<builds>[\d.,\sand]+)\)"
    r"\s*(?P<tag>Out-of-band|Preview)?", re.IGNORECASE)
_CLIENT_VERSIONS = {"24H2": WINDOWS11_24H2, "25H2": WINDOWS11_25H2, "26H2": WINDOWS11_26H2}
_CLIENT_BY_MAJOR = {str(BUILD_MAJOR[p]): p for p in (WINDOWS11_24H2, WINDOWS11_25H2,
                                                     WINDOWS11_26H2)}


@dataclass
class Table:
    section: str  # the heading above ("Windows Server hotpatch calendar")
    labels: list[str]  # the labels since that heading, nearest last
    header: list[str]
    rows: list[list[str]]


@dataclass
class Page:
    path: str
    title: str = ""
    url: str = ""  # the canonical URL, when the saved page names it
    dated: str = ""  # the page's own date (Markdown export: updated_at / ms.date)
    tables: list[Table] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # headings and link texts

    @property
    def family(self) -> str:
        """'windows11', 'server' or '' from the page's title or URL."""
        what = f"{self.title} {self.url}".lower()
        if "server" in what:
            return "server"
        if "windows 11" in what or "windows11" in what:
            return "windows11"
        return ""


# -- reading the saved file ---------------------------------------------------------------------

def read_page(path: Path) -> Page:
    """A saved page (HTML or Markdown); InputError when it is not text or not such a page."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    if b"\0" in data[:4096]:
        raise InputError(path, "binary data, not a saved web page", data.index(b"\0"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason})", exc.start) from None
    head = text.lstrip()[:2048].lower()
    page = Page(str(path))
    if head.startswith(("<!doctype", "<html", "<?xml")) or "<table" in text.lower():
        _HtmlReader(page).feed(text)
    else:
        _read_markdown(text, page)
    if not any(_table_kind(t) for t in page.tables) and not any(_TITLE.search(x)
                                                                for x in page.texts):
        raise InputError(path, "not a Microsoft release-information, update-history or hotpatch "
                               "release-notes page: no release-history or hotpatch-calendar table "
                               "and no update titles found")
    return page


class _HtmlReader(HTMLParser):
    """Tables with the headings and labels above them; <strong>/<b>/h3-h6 outside a table
    are labels ("Version 24H2 (OS build 26100)", "Calendar year 2026")."""

    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.section = ""
        self.labels: list[str] = []
        self.text: list[str] | None = None  # collecting for the element being read
        self.what = ""
        self.table: Table | None = None
        self.row: list[str] | None = None
        self.header_row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link" and (a.get("rel") or "").lower() == "canonical":
            self.page.url = a.get("href") or ""
        elif tag == "table":
            self.table = Table(self.section, list(self.labels), [], [])
        elif tag == "tr" and self.table is not None:
            self.row, self.header_row = [], False
        elif tag in ("td", "th") and self.row is not None:
            self.header_row |= tag == "th"
            self.text, self.what = [], "cell"
        elif self.table is None and tag in ("title", "h1", "h2", "h3", "h4", "h5", "h6",
                                            "strong", "b", "a"):
            self.text, self.what = [], tag

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.row is not None and self.text is not None:
            self.row.append(_clean(" ".join(self.text)))
            self.text = None
        elif tag == "tr" and self.table is not None and self.row is not None:
            if self.header_row and not self.table.header:
                self.table.header = [c.lower() for c in self.row]
            elif self.row:
                self.table.rows.append(self.row)
            self.row = None
        elif tag == "table" and self.table is not None:
            self.page.tables.append(self.table)
            self.table = None
        elif self.text is not None and tag == self.what:
            text = _clean(" ".join(self.text))
            self.text = None
            if tag == "title":
                self.page.title = text
            elif tag in ("h1", "h2"):
                self.section, self.labels = text, []
                self.page.texts.append(text)
            elif tag == "a":
                self.page.texts.append(text)
            elif text:
                self.labels.append(text)
                self.page.texts.append(text)


def _read_markdown(text: str, page: Page) -> None:
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":  # Learn's front matter
        for i, line in enumerate(lines[1:], 1):
            if line.strip() == "---":
                lines = lines[i + 1:]
                break
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "canonicalUrl":
                page.url = value
            elif key == "title":
                page.title = value
            elif key in ("updated_at", "ms.date") and not page.dated:
                page.dated = value[:10]
    section, table = "", None
    labels: list[str] = []
    for line in lines:
        s = line.strip()
        if s.startswith("|"):
            cells = [_clean(c) for c in s.strip("|").split("|")]
            if table is None:
                table = Table(section, list(labels), [c.lower() for c in cells], [])
                page.tables.append(table)
            elif not all(set(c) <= set("-: ") for c in cells):
                table.rows.append(cells)
            continue
        table = None
        if s.startswith("#"):
            heading = s.lstrip("#").strip()
            if s.startswith(("# ", "## ")):
                section, labels = heading, []
            else:
                labels.append(heading)
            page.texts.append(heading)
        elif s.startswith("**") and s.endswith("**") and len(s) > 4:
            labels.append(s.strip("*").strip())
            page.texts.append(labels[-1])
        page.texts += re.findall(r"\[([^\]]+)\]\(", s)


def _clean(text: str) -> str:
    """Cell text without Markdown link syntax, emphasis or repeated spaces."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"\s+", " ", text.replace("^", "").replace("\\*", "*")).strip()


# -- what the page says --------------------------------------------------------------------------

@dataclass
class PageRows:
    releases: list[Release]
    skipped: list[str]  # one line per kind of row not read, with a count


def _table_kind(table: Table) -> str:
    h = table.header
    if "month" in h and "type" in h and "update type" in h:
        return "calendar"
    if "update type" in h and "build" in h and any(c.startswith("kb") for c in h):
        return "history"
    return ""


def page_releases(page: Page, calendar: Calendar) -> PageRows:
    """The rows of the products the calendar tracks. `calendar` says what a month is where
    the page's own hotpatch calendar does not."""
    source = "page:" + Path(page.path).name
    origin = page.url or Path(page.path).name
    if page.dated:
        origin += f" ({page.dated})"
    out: dict[tuple[str, str], Release] = {}  # (product, KB or month:) -> row
    kinds: dict[tuple[str, str], ReleaseKind] = {}
    skipped: dict[str, int] = {}

    def skip(why: str, rows: int = 1) -> None:
        skipped[why] = skipped.get(why, 0) + rows

    def add(r: Release) -> None:
        if r.date and (r.date.year, r.date.month) != (r.year, r.month_number) \
                and not r.kind.value.startswith("out-of-band"):
            skip("row(s) dated outside their month")
            return
        out.setdefault((r.product, r.kb or "month:" + r.month), r)

    tables = [(t, _table_kind(t)) for t in page.tables]
    for table, kind in tables:  # calendars first: they say what each month is
        if kind == "calendar":
            for r in _calendar_rows(table, page, source, origin, skip):
                kinds[(r.product, r.month)] = r.kind
                add(r)
    for table, kind in tables:
        if kind == "history":
            for r in _history_rows(table, page, source, origin, kinds, calendar, skip):
                add(r)
    for text in page.texts:
        for m in _TITLE.finditer(text):
            for r in title_releases(m.group(0), page.family, source, origin, kinds, calendar):
                add(r)
    lines = [f"{n} {why}" for why, n in sorted(skipped.items())]
    return PageRows(list(out.values()), lines)


def _label_product(labels: list[str], family: str) -> tuple[str | None, str]:
    """The product the nearest product label names ('' none, None a product the calendar does
    not track) and that label."""
    for label in reversed(labels):
        m = _SERVER_LABEL.search(label)
        if m:
            return (WINDOWS_SERVER_2025 if m.group(1) == "2025" else None), label
        m = _VERSION_LABEL.search(label)
        if m:
            if family == "server":
                return None, label
            return _CLIENT_VERSIONS.get(m.group(1).upper()), label
    return "", ""


def _build_products(build: str, family: str) -> list[str]:
    """Products a build on a page of `family` belongs to ([] when none tracked)."""
    major, _, rev = build.partition(".")
    if family == "server":
        return [WINDOWS_SERVER_2025] if major == "26100" else []
    if major == "26100" and rev.isdigit() and int(rev) >= SERVER_REVISION_FLOOR:
        return [WINDOWS_SERVER_2025] if family == "" else []
    product = _CLIENT_BY_MAJOR.get(major)
    return [product] if product else []


def _calendar_rows(table: Table, page: Page, source: str, origin: str, skip) -> list[Release]:
    col = {name: i for i, name in enumerate(table.header)}
    product, label = _label_product(table.labels, page.family)
    if product is None:
        skip(f"hotpatch-calendar row(s) of {label} (not a product the calendar tracks)",
             len(table.rows))
        return []
    out = []
    for cells in table.rows:
        def get(name: str) -> str:
            return cells[col[name]] if name in col and col[name] < len(cells) else ""

        m = _UPDATE_TYPE.match(get("update type"))
        kind_text = get("type").lower()
        kind = (ReleaseKind.BASELINE if "baseline" in kind_text else
                ReleaseKind.HOTPATCH if "hotpatch" in kind_text else None)
        if not m or kind is None:
            skip("hotpatch-calendar row(s) without a month or a baseline/hotpatch type")
            continue
        month = f"{m.group(1)}-{m.group(2)}"
        kb_m = _KB.search(get("kb article"))
        build = normalize_build(get("build")) or ""
        products = [product] if product else (
            _build_products(build, page.family) if build else _family_products(page.family))
        if product and build and product not in _build_products(build, page.family):
            products = []
        if not products:
            skip("hotpatch-calendar row(s) of builds the calendar does not track "
                 f"({build.partition('.')[0]}.x)")
            continue
        for p in products:
            if kb_m:
                out += _with_25h2(p, month, f"KB{kb_m.group(1)}", build, kind,
                                  _date(get("availability date")), source,
                                  f"{get('update type')} {get('type')} on {origin}",
                                  family=page.family, labelled=bool(product))
            else:
                listed = f" (the row lists build {build})" if build else ""
                out.append(Release(p, month, "", "", kind, None, source,
                                   f"listed as {get('type')} without a KB{listed} on {origin}",
                                   verified=True))
                if page.family == "windows11" and not product and p == WINDOWS11_24H2:
                    out.append(Release(WINDOWS11_25H2, month, "", "", kind, None, source,
                                       f"listed as {get('type')} without a KB on {origin}",
                                       verified=False))
    return out


def _family_products(family: str) -> list[str]:
    return [WINDOWS_SERVER_2025] if family == "server" else [WINDOWS11_24H2] \
        if family == "windows11" else []


def _with_25h2(product: str, month: str, kb: str, build: str, kind: ReleaseKind,
               date: dt.date | None, source: str, note: str, *, family: str,
               labelled: bool) -> list[Release]:
    """The row, and on the Windows 11 hotpatch calendar (which lists 26100 builds for the
    shared 24H2/25H2 KB) the 25H2 row of the same revision, marked inferred."""
    rows = [Release(product, month, kb, build, kind, date, source, note, verified=True)]
    if family == "windows11" and not labelled and product == WINDOWS11_24H2 and build:
        rev = build.partition(".")[2]
        rows.append(Release(WINDOWS11_25H2, month, kb, f"26200.{rev}", kind, date, source,
                            note + "; 25H2 build inferred (same KB, same revision)",
                            verified=False))
    return rows


def _history_rows(table: Table, page: Page, source: str, origin: str,
                  kinds: dict[tuple[str, str], ReleaseKind], calendar: Calendar,
                  skip) -> list[Release]:
    col = {name: i for i, name in enumerate(table.header)}
    kb_col = next(i for i, name in enumerate(table.header) if name.startswith("kb"))
    product, label = _label_product(table.labels, page.family)
    if not product:
        skip(f"release-history row(s) of {label or 'no named version'} (not a product the "
             "calendar tracks)", len(table.rows))
        return []
    out = []
    for cells in table.rows:
        def get(name: str) -> str:
            return cells[col[name]] if name in col and col[name] < len(cells) else ""

        m = _UPDATE_TYPE.match(get("update type"))
        kb_m = _KB.search(cells[kb_col]) if kb_col < len(cells) else None
        build = normalize_build(get("build")) or ""
        if not m or not kb_m:
            skip("release-history row(s) without an update type or a KB (e.g. the release "
                 "itself)")
            continue
        if build and product not in _build_products(build, page.family):
            skip(f"release-history row(s) whose build is not {product}'s ({build})")
            continue
        month, letter = f"{m.group(1)}-{m.group(2)}", m.group(3)
        # a B row's kind is the month's: Microsoft's only where the page's hotpatch calendar
        # says what the month is, else the calendar's (the row is then not verified)
        verified = True
        if letter == "B":
            kind = _month_kind(product, month, kinds, calendar)
            kind = ReleaseKind.BASELINE if kind is ReleaseKind.BASELINE else ReleaseKind.STANDARD
            verified = (product, month) in kinds
            note = f"{get('update type')}" + ("" if verified else
                                                f", {kind.value} by the calendar's month")
        elif letter == "OOB":
            kind, note = ReleaseKind.OUT_OF_BAND, f"{get('update type')}"
        elif letter in ("C", "D"):
            kind, note = ReleaseKind.STANDARD, f"{get('update type')} (non-security preview)"
        else:
            skip(f"release-history row(s) of type {letter}")
            continue
        out.append(Release(product, month, f"KB{kb_m.group(1)}", build, kind,
                           _date(get("availability date")), source, f"{note} on {origin}",
                           verified=verified))
    return out


def _month_kind(product: str, month: str, kinds: dict[tuple[str, str], ReleaseKind],
                calendar: Calendar) -> ReleaseKind:
    """What the month is: the page's hotpatch calendar, else the calendar's data or cadence."""
    if (product, month) in kinds:
        return kinds[(product, month)]
    y, m = int(month[:4]), int(month[5:])
    return calendar.month_kind(product, y, m)


def title_releases(title: str, family: str, source: str, origin: str,
                   kinds: dict[tuple[str, str], ReleaseKind] | None = None,
                   calendar: Calendar | None = None) -> list[Release]:
    """The rows of one update title as Microsoft's update-history and hotpatch release-notes
    pages list them, one per build of a product the calendar tracks."""
    m = _TITLE.search(title)
    if not m:
        return []
    date = dt.date(int(m.group("year")), _MONTHS.index(m.group("mon").lower()) + 1,
                   int(m.group("day")))
    month = month_str(date.year, date.month)
    tag = (m.group("tag") or "").lower()
    out = []
    for build in re.findall(r"\d{5}\.\d+", m.group("builds")):
        for product in _build_products(build, family or ""):
            if m.group("hot"):
                kind = (ReleaseKind.OUT_OF_BAND_HOTPATCH if tag == "out-of-band"
                        else ReleaseKind.HOTPATCH)
            elif tag == "out-of-band":
                kind = ReleaseKind.OUT_OF_BAND
            elif tag == "preview":
                kind = ReleaseKind.STANDARD
            else:
                cal = calendar or Calendar.default()
                kind = (ReleaseKind.BASELINE if _month_kind(product, month, kinds or {}, cal)
                        is ReleaseKind.BASELINE else ReleaseKind.STANDARD)
            out.append(Release(product, month, f"KB{m.group('kb')}", build, kind, date, source,
                               f"'{m.group(0).strip()}' on {origin}", verified=True))
    return out


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip()[:10]) if text.strip() else None
    except ValueError:
        return None


# -- into the user calendar ----------------------------------------------------------------------

@dataclass
class PageUpdate:
    path: str
    lines: list[str]  # what changed, one line each
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)


def _describe(r: Release) -> str:
    what = f"{r.kb} {r.kind.value}" if r.kb else f"{r.kind.value} (KB not listed)"
    extra = " ".join(x for x in (r.build, r.date.isoformat() if r.date else "") if x)
    return f"{r.product} {r.month} {what}" + (f" {extra}" if extra else "")


_COMPARED = ("month", "build", "kind", "date", "verified")


def compare(current: Calendar, rows: list[Release]) -> tuple[list[Release], PageUpdate]:
    """The rows worth storing (new or different) and the lines saying what each changes."""

    have = {row_key(r): r for r in current}
    on_page = {row_key(r): r for r in rows}
    report = PageUpdate("", [])
    keep = []
    for r in sorted(rows, key=lambda r: (r.product, r.month, r.kb)):
        old = have.get(row_key(r))
        if r.is_marker:
            # a month listed without a KB is a plan: it never overrides what the calendar
            # already says the month is (a later page may have changed the plan)
            defining = current.month_release(r.product, r.year, r.month_number)
            now = on_page.get(row_key(defining)) if defining.kb else None
            if now is not None and now.kind not in (ReleaseKind.BASELINE, ReleaseKind.HOTPATCH):
                pass  # the page itself corrects that row: the month is what the page says
            elif defining.source != "cadence rule" and (defining.kb or defining.kind != r.kind):
                if defining.kind != r.kind:
                    report.lines.append(
                        f"differs  {r.product} {r.month}: the page lists {r.kind.value} without "
                        f"a KB; the calendar keeps {defining.kind.value} "
                        f"{defining.kb or '(KB not listed)'} ({defining.source})")
                report.unchanged += 1
                continue
        if old is None:
            report.added += 1
            word = "unknown " if r.is_marker else "added   "
            report.lines.append(f"{word} {_describe(r)}")
            keep.append(r)
            continue
        diffs = [f"{f} {_text(getattr(old, f))} -> {_text(getattr(r, f))}" for f in _COMPARED
                 if getattr(old, f) != getattr(r, f)
                 and not (f == "verified" and old.verified and not r.verified)]
        if diffs:
            report.changed += 1
            label = r.kb or f"{r.month} (KB not listed)"
            report.lines.append(f"changed  {r.product} {label}: " + "; ".join(diffs))
            keep.append(r)
        else:
            report.unchanged += 1
    return keep, report


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(getattr(value, "value", value) or "''")


def update_from_page(path: Path) -> PageUpdate:
    """Read a saved Microsoft page and merge what it adds or corrects into the user calendar."""

    page = read_page(path)
    current = Calendar.default()
    rows = page_releases(page, current)
    keep, report = compare(current, rows.releases)
    if keep:
        store_user_rows(keep)
    report.path, report.skipped = str(path), rows.skipped
    return report
