"""Release calendar: every built-in row classifies, the cadence rule covers months without data."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from hpforensics.errors import InputError
from hpforensics.kb.calendar import (
    PRODUCTS,
    Calendar,
    ReleaseKind,
    cadence_kind,
    normalize_build,
    patch_tuesday,
)
from hpforensics.kb.calendar_io import parse_rows, read_builtin


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HPF_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def cal() -> Calendar:
    return Calendar.default()


def test_every_builtin_row_classifies_by_kb_and_build(cal: Calendar) -> None:
    rows, sources = read_builtin()
    assert len(rows) >= 40
    for r in rows:
        assert r.source in sources, f"{r.kb}: source {r.source!r} not in calendar_sources.csv"
        if r.is_marker:  # a month whose KB is not known: no KB, no build, no date
            assert not r.build and r.date is None and r.kind in (ReleaseKind.BASELINE,
                                                                 ReleaseKind.HOTPATCH)
            assert cal.month_release(r.product, r.year, r.month_number) == r
            continue
        assert cal.lookup_kb(r.kb, r.product) == r
        assert cal.lookup_kb(r.kb.lower().removeprefix("kb"), r.product) == r
        if r.build:
            assert cal.lookup_build(r.build, r.product) == r
            assert cal.lookup_build("10.0." + r.build, r.product) == r
        if r.kind in (ReleaseKind.BASELINE, ReleaseKind.HOTPATCH):
            y, m = r.year, r.month_number
            assert cal.month_kind(r.product, y, m) is r.kind
            assert r.date == patch_tuesday(y, m), f"{r.kb}: scheduled update not on Patch Tuesday"
            if not r.off_cadence:
                assert r.kind is cadence_kind(y, m)


def test_known_releases(cal: Calendar) -> None:
    r = cal.lookup_kb("KB5052105")
    assert (r.product, r.month, r.build, r.kind) == (
        "windows11-24h2", "2025-02", "26100.3107", "hotpatch")
    # Shared through 2025: the same KB is a Server 2025 hotpatch too.
    assert cal.lookup_kb("KB5052105", "windows-server-2025").kind is ReleaseKind.HOTPATCH
    # 2026: Server 2025 has its own KBs and 26100.32xxx builds.
    s = cal.lookup_build("26100.32230")
    assert (s.product, s.kb, s.kind) == ("windows-server-2025", "KB5073379", ReleaseKind.BASELINE)
    assert cal.lookup_kb("KB5073379", "windows11-24h2") is None
    assert cal.lookup_kb("KB5055523").kind is ReleaseKind.BASELINE
    assert cal.lookup_kb("KB1234567") is None
    assert cal.lookup_build("26100.1") is None
    assert cal.lookup("KB5060841").month == "2025-06"
    assert cal.lookup("26100.4270").kb == "KB5060841"


def test_june_2026_hotpatch_month_turned_baseline(cal: Calendar) -> None:
    assert cadence_kind(2026, 6) is ReleaseKind.HOTPATCH
    assert cal.month_kind("windows11-24h2", 2026, 6) is ReleaseKind.BASELINE
    r = cal.month_release("windows11-24h2", 2026, 6)
    assert r.kb == "KB5094126" and r.off_cadence
    # Server 2025's June turned baseline too (Microsoft's hotpatch calendar, August 2026);
    # its July is a hotpatch month whose hotpatch KB the calendar does not list.
    s = cal.month_release("windows-server-2025", 2026, 6)
    assert (s.kb, s.build, s.kind, s.verified) == ("KB5094125", "26100.32995",
                                                   ReleaseKind.BASELINE, True)
    july = cal.month_release("windows-server-2025", 2026, 7)
    assert (july.kb, july.kind, july.source) == ("", ReleaseKind.HOTPATCH,
                                                 "ms-server-release-info-2026-08")
    assert cal.lookup_kb("KB5099536", "windows-server-2025").kind is ReleaseKind.STANDARD


def test_out_of_band(cal: Calendar) -> None:
    oob = cal.lookup_kb("KB5084597")
    assert oob.kind is ReleaseKind.OUT_OF_BAND_HOTPATCH and oob.kind.is_hotpatch
    # An out-of-band row does not change what its month is.
    assert cal.month_kind("windows11-24h2", 2026, 3) is ReleaseKind.HOTPATCH
    assert cal.lookup_build("26100.3983").kind is ReleaseKind.OUT_OF_BAND_HOTPATCH


@pytest.mark.parametrize(
    "year,month,kind",
    [(2027, 1, "baseline"), (2027, 2, "hotpatch"), (2027, 3, "hotpatch"), (2027, 4, "baseline"),
     (2028, 10, "baseline"), (2028, 12, "hotpatch")],
)
def test_cadence_rule_for_months_not_in_data(
    cal: Calendar, year: int, month: int, kind: str
) -> None:
    for product in PRODUCTS:
        assert not [r for r in cal.month_releases(product, year, month)]
        assert cal.month_kind(product, year, month).value == kind
        placeholder = cal.month_release(product, year, month)
        assert placeholder.kb == "" and placeholder.source == "cadence rule"


def test_before_hotpatch_program_is_standard(cal: Calendar) -> None:
    assert cal.month_kind("windows11-24h2", 2024, 10) is ReleaseKind.STANDARD
    assert cal.month_kind("windows11-24h2", 2024, 11) is ReleaseKind.HOTPATCH


def test_patch_tuesday_and_normalisation() -> None:
    assert patch_tuesday(2025, 2) == dt.date(2025, 2, 11)
    assert patch_tuesday(2026, 6) == dt.date(2026, 6, 9)
    assert patch_tuesday(2024, 10) == dt.date(2024, 10, 8)
    assert normalize_build("10.0.26100.03107") == "26100.3107"
    assert normalize_build("26100") is None
    with pytest.raises(ValueError):
        cadence_kind(2025, 13)


@pytest.mark.parametrize(
    "line,reason",
    [
        ("windows11-24h2,2026-13,KB5099999,26100.9000,baseline,2026-01-13", "not a month"),
        ("windows11-24h2,2026-07,KB12,26100.9000,baseline,2026-07-14", "bad KB"),
        ("windows11-24h2,2026-07,KB5099999,26100,baseline,2026-07-14", "bad build"),
        ("windows11-24h2,2026-07,KB5099999,26100.9000,monthly,2026-07-14", "bad kind"),
        ("windows11-24h2,2026-07,KB5099999,26100.9000,baseline,2026-08-11", "not in month"),
        ("windows11-24h2,2026-07,KB5099999,26100.9000,baseline,14/07/2026", "bad date"),
        ("Windows 11!,2026-07,KB5099999,26100.9000,baseline,2026-07-14", "bad product"),
    ],
)
def test_bad_row_names_the_line(line: str, reason: str) -> None:
    text = ("# comment\nproduct,month,kb,build,kind,date\n"
            "windows11-24h2,2026-08,KB5099998,,hotpatch,\n" + line)
    with pytest.raises(InputError) as err:
        parse_rows(text, "user.csv")
    assert "line 4" in str(err.value) and reason in str(err.value)


def test_cli_show_filters_and_fills_gaps(cli) -> None:
    proc = cli("calendar", "--product", "windows-server-2025", "--from", "2026-04",
               "--to", "2026-08",
               "--format", "csv", check=True)
    rows = [r for r in csv.DictReader(io.StringIO(proc.stdout))
            if r["kind"] in ("baseline", "hotpatch")]
    assert [r["month"] for r in rows] == ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08"]
    assert rows[0]["kb"] == "KB5082063" and rows[0]["kind"] == "baseline"
    assert (rows[2]["kb"], rows[2]["kind"]) == ("KB5094125", "baseline")
    # July 2026: a hotpatch month whose KB is unknown is a row saying so, not a guess
    assert (rows[3]["kb"], rows[3]["kind"], rows[3]["source"]) == (
        "", "hotpatch", "ms-server-release-info-2026-08")
    proc = cli("calendar", "--product", "windows-server-2025", "--from", "2027-01",
               "--to", "2027-02", "--format", "csv", check=True)
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    # months past the data: the cadence rule fills them in
    assert [(r["kb"], r["kind"], r["source"]) for r in rows] == [
        ("", "baseline", "cadence rule"), ("", "hotpatch", "cadence rule")]
    proc = cli("calendar", "--format", "json", check=True)
    data = json.loads(proc.stdout)
    assert {"windows11-24h2", "windows-server-2025"} <= {r["product"] for r in data}


def test_cli_update_extends_and_overrides(cli, tmp_path) -> None:
    env = {"HPF_DATA_DIR": str(tmp_path / "hpf"), "PATH": "/usr/bin:/bin"}
    user = tmp_path / "more.csv"
    user.write_text(
        "product,month,kb,build,kind,date,note\n"
        "windows11-24h2,2027-02,KB5999001,26100.9999,hotpatch,2027-02-09,test row\n"
        "windows11-24h2,2026-06,KB5094126,26100.8655,baseline,2026-06-09,now confirmed\n"
    )
    proc = cli("calendar", "update", user, env=env, check=True)
    assert "2 row(s) added, 0 replaced" in proc.stdout
    assert (tmp_path / "hpf" / "calendar.csv").is_file()
    out = cli("calendar", "--from", "2027-02", "--to", "2027-02", "-p", "windows11-24h2",
              "-f", "json",
              env=env, check=True)
    (row,) = json.loads(out.stdout)
    assert row["kb"] == "KB5999001" and row["source"] == "user:more.csv"
    out = cli("calendar", "--from", "2026-06", "--to", "2026-06", "-p", "windows11-24h2",
              "-f", "json",
              env=env, check=True)
    assert json.loads(out.stdout)[0]["note"] == "now confirmed"

    bad = tmp_path / "bad.csv"
    bad.write_text("product,month,kb,kind\nwindows11-24h2,2027-03,KB5999002,hotfix\n")
    proc = cli("calendar", "update", bad, env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("hpforensics: error:") and "line 2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_standard_updates_and_25h2(cal: Calendar) -> None:
    # The ordinary LCU of a hotpatch month takes a device off the hotpatch track.
    std = cal.lookup_kb("KB5051987")
    assert std.kind is ReleaseKind.STANDARD and std.month == "2025-02" and std.kind.needs_restart
    assert cal.month_kind("windows11-24h2", 2025, 2) is ReleaseKind.HOTPATCH
    # One client hotpatch KB covers 24H2 (26100.x) and 25H2 (26200.x).
    h = cal.lookup_build("26200.7392")
    assert (h.product, h.kb, h.kind) == ("windows11-25h2", "KB5072014", ReleaseKind.HOTPATCH)
    assert {r.product for r in cal.lookup_kb_all("KB5072014")} == {
        "windows11-24h2", "windows-server-2025", "windows11-25h2"}
    assert cal.lookup_kb("KB5072014").product == "windows11-24h2"
    assert cal.month_kind("windows11-25h2", 2025, 9) is ReleaseKind.STANDARD


def test_classify_known_and_unknown(cal: Calendar) -> None:
    c = cal.classify("10.0.26100.3107")
    assert c.exact and c.kind is ReleaseKind.HOTPATCH and c.release.kb == "KB5052105"
    # a build the calendar lacks (a preview) lands after the nearest earlier release of its branch
    c = cal.classify("26100.3323")
    assert not c.exact and c.kind is None and c.release.kb == "KB5051987"
    # Server 2025's 2026 branch (26100.32xxx) is not confused with the client's 26100 line
    c = cal.classify("26100.32400")
    assert c.release.product == "windows-server-2025" and c.release.month == "2026-02"
    assert cal.classify("KB1234567").release is None
    assert cal.classify("26100.1").release is None


def test_cli_classify(cli) -> None:
    proc = cli("calendar", "classify", "KB5094126", "26200.8390", "KB5051987", "-f", "json",
               check=True)
    rows = json.loads(proc.stdout)
    assert [(r["kind"], r["product"]) for r in rows] == [
        ("baseline", "windows11-24h2"), ("hotpatch", "windows11-25h2"),
        ("standard", "windows11-24h2")]


def test_august_2026_client_hotpatch_and_server_line(cal: Calendar) -> None:
    hot = cal.lookup_kb_all("KB5120994")
    assert {(r.product, r.build, r.kind, r.month) for r in hot} == {
        ("windows11-24h2", "26100.9106", ReleaseKind.HOTPATCH, "2026-08"),
        ("windows11-25h2", "26200.9106", ReleaseKind.HOTPATCH, "2026-08")}
    assert cal.month_release("windows11-24h2", 2026, 8).kb == "KB5120994"
    assert cal.lookup_kb("KB5121003").kind is ReleaseKind.STANDARD  # the month's LCU
    # Server 2025's own line: a server build never matches a client row, nor the reverse
    assert cal.lookup_build("26100.33222").product == "windows-server-2025"
    assert cal.lookup_build("26100.9106", "windows-server-2025") is None
    near = cal.classify("26100.33250")
    assert (near.release.product, near.release.kb, near.exact) == (
        "windows-server-2025", "KB5120228", False)
    near = cal.classify("26100.9120")
    assert (near.release.product, near.release.kb) == ("windows11-24h2", "KB5120994")


def test_26h2_has_its_own_rows(cal: Calendar) -> None:
    ga = cal.lookup_kb("KB5129195", "windows11-26h2")
    assert (ga.build, ga.kind, ga.date) == ("26300.9457", ReleaseKind.OUT_OF_BAND,
                                            dt.date(2026, 9, 29))
    assert cal.lookup_build("26300.9457").product == "windows11-26h2"
    # before its first baseline month 26H2 has no hotpatch programme
    assert cal.month_kind("windows11-26h2", 2026, 9) is ReleaseKind.STANDARD
    oct_ = cal.month_release("windows11-26h2", 2026, 10)
    assert (oct_.kb, oct_.kind, oct_.source) == ("", ReleaseKind.BASELINE, "no-public-kb")


def test_every_month_to_december_2026_has_a_row(cal: Calendar) -> None:
    """Current to December 2026: each month of each product is a row, a KB or an explicit
    unknown, never only the cadence rule."""
    from hpforensics.kb.calendar import HOTPATCH_START, MonthState, iter_months, parse_month

    for product in PRODUCTS:
        for month in iter_months(HOTPATCH_START[product], "2026-12"):
            y, m = parse_month(month)
            assert cal.month_state(product, y, m) is not MonthState.MISSING, (product, month)


def test_check_lists_months_not_confirmed_up_to_today(cal: Calendar) -> None:
    from hpforensics.kb.calendar import MonthState

    found = {(c.product, c.month): c.state for c in cal.check(dt.date(2026, 12, 7))}
    assert found[("windows11-24h2", "2026-09")] is MonthState.UNKNOWN
    assert found[("windows11-24h2", "2026-08")] is MonthState.UNCONFIRMED
    assert ("windows11-24h2", "2026-05") not in found  # confirmed on Microsoft's notes
    assert ("windows11-24h2", "2026-12") not in found  # Patch Tuesday is 2026-12-08
    assert ("windows11-24h2", "2026-12") in {
        (c.product, c.month) for c in cal.check(dt.date(2026, 12, 8))}
    assert cal.last_confirmed_month("windows11-24h2") == "2026-05"
    assert cal.last_confirmed_month("windows-server-2025") == "2026-06"


def test_marker_rows_in_a_user_csv(tmp_path) -> None:
    """An empty KB is allowed for a baseline/hotpatch month only; a KB row for the month
    replaces the marker."""
    user = tmp_path / "u.csv"
    user.write_text("product,month,kb,build,kind,date\n"
                    "windows11-24h2,2027-01,,,baseline,\n")
    cal = Calendar.from_csv(user)
    assert cal.month_release("windows11-24h2", 2027, 1).source == "user:u.csv"
    bad = "product,month,kb,build,kind,date\nwindows11-24h2,2027-01,,,standard,\n"
    with pytest.raises(InputError, match="line 2: bad KB"):
        parse_rows(bad, "u.csv")
    with pytest.raises(InputError, match="a build without a KB"):
        parse_rows("product,month,kb,build,kind\nwindows11-24h2,2027-01,,26100.9999,baseline\n",
                   "u.csv")
    (tmp_path / "k.csv").write_text("product,month,kb,build,kind,date\n"
                                    "windows11-24h2,2026-10,KB5999999,26100.9999,baseline,"
                                    "2026-10-13\n")
    cal = Calendar.from_csv(tmp_path / "k.csv")
    assert [r.kb for r in cal.month_releases("windows11-24h2", 2026, 10)] == ["KB5999999"]
