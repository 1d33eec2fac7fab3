"""Windows 11 24H2 release months, titles and ids the fleet simulator uses."""
from __future__ import annotations

import datetime as _dt
import uuid

UTC = _dt.timezone.utc

# month -> (kind, KB, build revision); Windows 11 24H2 rows of the release calendar in
# /work/shared/reference/hotpatch-internals.md (hotpatch months list the hotpatch KB).
CALENDAR: dict[str, tuple[str, str, int]] = {
    "2025-01": ("baseline", "KB5050009", 2894), "2025-02": ("hotpatch", "KB5052105", 3107),
    "2025-03": ("hotpatch", "KB5053636", 3403), "2025-04": ("baseline", "KB5055523", 3775),
    "2025-05": ("hotpatch", "KB5058497", 3981), "2025-06": ("hotpatch", "KB5060841", 4270),
    "2025-07": ("baseline", "KB5062553", 4652), "2025-08": ("hotpatch", "KB5064010", 4851),
    "2025-09": ("hotpatch", "KB5065474", 6508), "2025-10": ("baseline", "KB5066835", 6899),
    "2025-11": ("hotpatch", "KB5068966", 7092), "2025-12": ("hotpatch", "KB5072014", 7392),
    "2026-01": ("baseline", "KB5074109", 7623), "2026-02": ("hotpatch", "KB5077212", 7781),
    "2026-03": ("hotpatch", "KB5079420", 7979), "2026-04": ("baseline", "KB5083769", 8246),
    "2026-05": ("hotpatch", "KB5089466", 8390),
    # later months, for tests of the calendar past May 2026 (hpforensics/data/calendar.csv)
    "2026-06": ("baseline", "KB5094126", 8655), "2026-07": ("baseline", "KB5101650", 8875),
    "2026-08": ("hotpatch", "KB5120994", 9106),
}
# Standard cumulative updates of hotpatch months (what non-hotpatch devices get); only months
# whose KB/build we confirmed in Microsoft's release notes as quoted by public write-ups.
STANDARD: dict[str, tuple[str, int]] = {"2025-08": ("KB5063878", 4946),
                                        "2025-09": ("KB5065426", 6584)}
OUT_OF_BAND_HOTPATCH: dict[str, tuple[str, int]] = {"2026-03": ("KB5084597", 7982)}
OS_BUILD = 26100


def patch_tuesday(month: str) -> _dt.datetime:
    y, m = map(int, month.split("-"))
    first = _dt.date(y, m, 1)
    day = 1 + (1 - first.weekday()) % 7 + 7
    return _dt.datetime(y, m, day, 17, 0, tzinfo=UTC)  # 10:00 PT release


def next_month(month: str) -> str:
    y, m = map(int, month.split("-"))
    return f"{y + m // 12}-{m % 12 + 1:02d}"


def update_title(month: str, kb: str, build: int, hotpatch: bool, *, version: str = "24H2",
                 os_build: int = OS_BUILD, arch: str = "x64") -> str:
    kind = "Security Hotpatch Update" if hotpatch else "Cumulative Update"
    return (f"{month} {kind} for Windows 11 Version {version} for {arch}-based Systems ({kb}) "
            f"({os_build}.{build})")


def update_guid(kb: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "urn:hpforensics:update:" + kb)
