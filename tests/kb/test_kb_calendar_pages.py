"""`calendar update` on Microsoft's own pages as saved (tests/kb/data/ms-pages, origins in its
README): what each page adds or corrects, Server 2025 kept apart from the client, refusals."""
from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from hpforensics.errors import InputError
from hpforensics.kb.calendar import Calendar, ReleaseKind, merge
from hpforensics.kb.calendar_pages import compare, page_releases, read_page, title_releases

PAGES = Path(__file__).parent / "data" / "ms-pages"
SERVER_MD = PAGES / "windows-server-release-info-2026-05.md"
SERVER_HTML = PAGES / "windows-server-release-info-2026-08.html"
WIN11_HTML = PAGES / "windows11-release-information-2026-08.html"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HPF_DATA_DIR", str(tmp_path / "data"))


def rows_of(path: Path, cal: Calendar | None = None) -> dict[tuple[str, str], object]:
    got = page_releases(read_page(path), cal or Calendar.builtin()).releases
    return {(r.product, r.kb or "month:" + r.month): r for r in got}


def test_server_markdown_export() -> None:
    page = read_page(SERVER_MD)
    assert page.family == "server" and page.dated == "2026-05-12"
    assert page.url == "https://learn.microsoft.com/en-us/windows/release-health/windows-server-release-info"
    rows = rows_of(SERVER_MD)
    hot = rows[("windows-server-2025", "KB5075942")]
    assert (hot.month, hot.build, hot.kind, hot.verified) == (
        "2026-02", "26100.32313", ReleaseKind.HOTPATCH, True)
    assert rows[("windows-server-2025", "KB5073379")].kind is ReleaseKind.BASELINE
    # a B row in a month the page's calendar calls Hotpatch is that month's standard LCU
    lcu = rows[("windows-server-2025", "KB5087539")]
    assert (lcu.month, lcu.kind, lcu.verified) == ("2026-05", ReleaseKind.STANDARD, True)
    # the page's calendar holds no December 2025 row here: the kind is the calendar's, unverified
    dec = rows[("windows-server-2025", "KB5072033")]
    assert (dec.kind, dec.verified) == (ReleaseKind.STANDARD, False)
    assert rows[("windows-server-2025", "KB5078135")].kind is ReleaseKind.OUT_OF_BAND
    # months planned without a KB are markers, never a guessed KB
    june = rows[("windows-server-2025", "month:2026-06")]
    assert (june.kb, june.build, june.kind) == ("", "", ReleaseKind.HOTPATCH)
    # Windows Server 2022 (20348) is not read; nothing becomes a client row
    assert {p for p, _ in rows} == {"windows-server-2025"}
    assert not [r for r in rows.values() if r.build.startswith("20348")]


def test_server_page_adds_and_corrects_rows() -> None:
    """Against the calendar as it was before this page was read (no Server June/July 2026 rows
    from Microsoft, July's LCU taken for the baseline): the page adds June's baseline and
    July's hotpatch month, and corrects KB5099536 to July's standard LCU."""
    built = Calendar.builtin()
    before = [r for r in built if r.source != "ms-server-release-info-2026-08"]
    old = built.lookup_kb("KB5099536", "windows-server-2025")
    before.append(dataclasses.replace(old, kind=ReleaseKind.BASELINE, verified=False,
                                      source="third-party-titles"))
    cal = Calendar(before)
    page = read_page(SERVER_HTML)
    keep, report = compare(cal, page_releases(page, cal).releases)
    assert ("added    windows-server-2025 2026-06 KB5094125 baseline 26100.32995 2026-06-09"
            in report.lines)
    assert ("changed  windows-server-2025 KB5099536: kind baseline -> standard; verified no -> "
            "yes" in report.lines)
    assert "unknown  windows-server-2025 2026-07 hotpatch (KB not listed)" in report.lines
    assert ("added    windows-server-2025 2026-08 KB5120233 standard 26100.33296 2026-08-11"
            in report.lines)
    assert (report.added, report.changed) == (3, 1)
    after = Calendar(merge(before, keep))
    assert after.month_release("windows-server-2025", 2026, 6).kb == "KB5094125"
    assert after.month_kind("windows-server-2025", 2026, 7) is ReleaseKind.HOTPATCH
    # the built-in calendar already holds all of it: nothing to store
    keep, report = compare(built, page_releases(page, built).releases)
    assert (keep, report.added, report.changed) == ([], 0, 0)


def test_older_page_does_not_undo_a_later_plan() -> None:
    """The May 2026 page still planned June as a hotpatch month and July as a baseline; the
    calendar (from the August page) knows better, and the update says where they differ."""
    built = Calendar.builtin()
    keep, report = compare(built, page_releases(read_page(SERVER_MD), built).releases)
    assert not [r for r in keep if r.month in ("2026-06", "2026-07")]
    assert any(line.startswith("differs  windows-server-2025 2026-06: the page lists hotpatch")
               for line in report.lines)


def test_windows11_html_page() -> None:
    rows = rows_of(WIN11_HTML)
    base = rows[("windows11-24h2", "KB5074109")]
    assert (base.month, base.build, base.kind, base.verified) == (
        "2026-01", "26100.7623", ReleaseKind.BASELINE, True)
    # the Windows 11 hotpatch calendar lists the 26100 build; 25H2's is inferred
    assert rows[("windows11-25h2", "KB5077212")].build == "26200.7781"
    assert rows[("windows11-25h2", "KB5077212")].verified is False
    aug = rows[("windows11-24h2", "KB5121003")]
    assert (aug.build, aug.kind, aug.month) == ("26100.9168", ReleaseKind.STANDARD, "2026-08")
    assert rows[("windows11-25h2", "KB5121003")].build == "26200.9168"
    assert rows[("windows11-24h2", "KB5121767")].kind is ReleaseKind.OUT_OF_BAND
    d = rows[("windows11-24h2", "KB5101684")]
    assert (d.kind, d.date.isoformat()) == (ReleaseKind.STANDARD, "2026-07-28")
    assert "non-security preview" in d.note
    assert not [p for p, _ in rows if p == "windows-server-2025"]


@pytest.mark.parametrize("title,family,want", [
    # titles as Microsoft's update-history / hotpatch release-notes pages list them, quoted
    # from those pages by public write-ups (no saved copy of the pages themselves was found)
    ("February 10, 2026—Hotpatch KB5077212 (OS Builds 26200.7781 and 26100.7781)", "windows11",
     {("windows11-25h2", "26200.7781", "hotpatch"), ("windows11-24h2", "26100.7781", "hotpatch")}),
    ("September 14, 2026—KB5129195 (OS Builds 26200.9457 and 26100.9457) Out-of-band",
     "windows11", {("windows11-25h2", "26200.9457", "out-of-band"),
                   ("windows11-24h2", "26100.9457", "out-of-band")}),
    ("August 11, 2026—Hotpatch KB5120228 (OS Build 26100.33222)", "server",
     {("windows-server-2025", "26100.33222", "hotpatch")}),
    # a server build on a Windows 11 page is not a client row
    ("August 11, 2026—Hotpatch KB5120228 (OS Build 26100.33222)", "windows11", set()),
    ("January 24, 2026—Hotpatch KB5078238 (OS Build 20348.4655) Out-of-band", "server", set()),
])
def test_update_titles(title: str, family: str, want: set) -> None:
    got = title_releases(title, family, "page:t", "t", calendar=Calendar.builtin())
    assert {(r.product, r.build, r.kind.value) for r in got} == want


def test_refuses_what_it_cannot_read(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a Microsoft release-information"):
        read_page(PAGES / "README.md")
    with pytest.raises(InputError, match="binary data") as err:
        read_page(shared_data / "evtx" / "system.evtx")
    assert err.value.offset is not None
    (tmp_path / "latin1.html").write_bytes(b"<html><table><tr><th>Month \xe9</th></tr></table>")
    with pytest.raises(InputError, match="not UTF-8") as err:
        read_page(tmp_path / "latin1.html")
    assert err.value.offset == 27  # the byte after "<html><table><tr><th>Month "


def test_cli_update_prints_changes_and_refuses_a_bad_page(cli, tmp_path: Path) -> None:
    env = {"HPF_DATA_DIR": str(tmp_path / "data")}
    old = tmp_path / "old.csv"  # a row a user once stored: July's LCU taken for a baseline
    old.write_text("product,month,kb,build,kind,date,verified,note\n"
                   "windows-server-2025,2026-07,KB5099536,26100.33158,baseline,2026-07-14,no,"
                   "assumed\n")
    cli("calendar", "update", old, env=_env(env), check=True)
    proc = cli("calendar", "update", SERVER_HTML, env=_env(env), check=True)
    assert ("changed  windows-server-2025 KB5099536: kind baseline -> standard; verified no -> "
            "yes") in proc.stdout
    assert "1 changed" in proc.stdout and "skipped 3 hotpatch-calendar row(s)" in proc.stdout
    proc = cli("calendar", "classify", "KB5099536", "-p", "windows-server-2025", "-f", "csv",
               env=_env(env), check=True)
    assert next(csv.DictReader(io.StringIO(proc.stdout)))["kind"] == "standard"
    proc = cli("calendar", "update", SERVER_MD, env=_env(env), check=True)  # the Markdown export
    assert proc.stdout.splitlines()[0].startswith(
        "differs  windows-server-2025 2026-06: the page lists hotpatch without a KB; the "
        "calendar keeps baseline KB5094125")
    assert proc.stdout.splitlines()[-1].startswith(f"{SERVER_MD}: 0 added, 4 changed, ")
    stored = (tmp_path / "data" / "calendar.csv").read_text()
    # a bad page among good ones: one line naming it, exit 2, nothing more stored
    proc = cli("calendar", "update", WIN11_HTML, PAGES / "README.md", env=_env(env))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"hpforensics: error: {PAGES / 'README.md'}: not a Microsoft release-information, "
        "update-history or hotpatch release-notes page: no release-history or hotpatch-calendar "
        "table and no update titles found"]
    assert (tmp_path / "data" / "calendar.csv").read_text() == stored


def test_cli_check(cli, tmp_path: Path) -> None:
    env = _env({"HPF_DATA_DIR": str(tmp_path / "data")})
    proc = cli("calendar", "check", "--today", "2026-12-07", "-f", "csv", env=env, check=True)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    states = {(r["product"], r["month"]): r["state"] for r in rows}
    assert states[("windows11-24h2", "2026-11")] == "unknown"
    assert states[("windows-server-2025", "2026-08")] == "unconfirmed"
    assert ("windows11-24h2", "2026-12") not in states  # released 2026-12-08
    assert "last confirmed: windows11-24h2 2026-05" in proc.stderr
    proc = cli("calendar", "check", "--today", "2027-02-10", "-p", "windows11-24h2", "-f", "csv",
               env=env, check=True)
    months = {r["month"]: r for r in csv.DictReader(io.StringIO(proc.stdout))}
    assert months["2027-01"]["state"] == "missing" and months["2027-01"]["source"] == "cadence rule"
    assert "2027-02" in months and "2026-12" in months
    bad = cli("calendar", "check", "--today", "07/12/2026", env=env)
    assert bad.returncode == 2 and "--today must be a date" in bad.stderr


def _env(extra: dict) -> dict:
    import os

    return {**os.environ, **extra}
