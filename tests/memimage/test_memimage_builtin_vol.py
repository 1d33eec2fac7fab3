"""Volatility's own plugins read the sample image as a Windows 11 24H2 machine (no config file)."""
from __future__ import annotations

from memimage_helpers import vol_json


def test_pslist_lists_the_planted_processes(plan):
    rows = vol_json("windows.pslist")
    got = {(r["PID"], r["PPID"], r["ImageFileName"]) for r in rows}
    want = {(p["pid"], p["ppid"], p["name"]) for p in plan["processes"]}
    assert got == want
    created = {r["PID"]: r["CreateTime"] for r in rows}
    assert created[1024].startswith("2026-05-14T08:00:20")


def test_dlllist_follows_the_loader_lists(plan):
    rows = vol_json("windows.dlllist")
    for p in plan["processes"]:
        if p["pid"] == 4:
            continue
        got = [r["Path"] for r in rows if r["PID"] == p["pid"]]
        assert got == p["loader_modules"], p["name"]
    # rundll32 maps hpbase.dll but unlinked it from every loader list
    assert not any(r["PID"] == 4404 and r["Name"] == "hpbase.dll" for r in rows)


def test_vadinfo_shows_image_nodes_including_unlisted(plan):
    rows = vol_json("windows.vadinfo")
    for p in plan["processes"]:
        if p["pid"] == 4:
            continue
        files = sorted(r["File"] for r in rows
                       if r["PID"] == p["pid"] and r["File"] not in (None, "N/A"))
        assert files == p["image_vads"], p["name"]
    hidden = [r for r in rows if r["PID"] == 4404 and (r["File"] or "").endswith("hpbase.dll")]
    assert len(hidden) == 1 and hidden[0]["Start VPN"] == 0x7FFB12340000
    assert hidden[0]["Protection"] == "PAGE_EXECUTE_WRITECOPY"


def test_modules_walks_psloadedmodulelist(plan):
    rows = vol_json("windows.modules")
    assert [r["Path"] for r in rows] == plan["kernel"]["modules"]
    base = {r["Name"]: r["Base"] for r in rows}
    assert base["hpkern.sys"] & 0xFFFFFFFFFFFF == 0xF80612340000


def test_info_reads_the_version_block_and_kuser():
    rows = {r["Variable"]: r["Value"] for r in vol_json("windows.info")}
    assert rows["Major/Minor"] == "15.26100"
    assert rows["NtMajorVersion"] == "10" and rows["NtProductType"] == "NtProductWinNt"
    assert rows["DTB"] == "0x1ad000" and rows["Is64Bit"] == "True"
