"""report.html: one self-contained page an auditor can mail (inline CSS and SVG, no scripts,
no external assets). It reads the timeline result; it computes roll-ups, never verdicts."""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from hpforensics import __version__
from hpforensics.timeline.rows import month_rows
from hpforensics.timeline.correlate import KbCorrelation

COLOURS = {
    "compliant": "#2e7d32", "off-track": "#f9a825", "late": "#ef6c00",
    "pending-reboot": "#8e24aa", "failed": "#c62828", "missing": "#b71c1c",
    "baseline-missing": "#4a148c", "not-due": "#b0bec5", "not-covered": "#eceff1",
    "not-applicable": "#dcdcdc",
}
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0;max-width:100%}td,th{border:1px solid #ddd;
padding:3px 5px;font-size:12px;text-align:left;vertical-align:top;overflow-wrap:break-word}
td:first-child{white-space:nowrap}td.brk{white-space:normal;overflow-wrap:anywhere}
th{background:#f4f4f4}.status-up{color:#2e7d32}.status-not{color:#b71c1c;font-weight:bold}
.grid td.cell{width:26px;height:20px;padding:0;text-align:center;color:#fff;font-size:10px}
.legend span{display:inline-block;margin-right:12px}.legend i{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:middle}.warn{color:#b71c1c}
.small{color:#666;font-size:12px}
"""


def _e(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return html.escape(str(value))


class _Raw(str):
    """Markup this module built (its text already escaped)."""


def _cell(value: Any) -> str:
    return value if isinstance(value, _Raw) else _e(value)


def _table(columns: list[str], rows: Iterable[dict[str, Any]], limit: int = 2000,
           headings: dict[str, str] | None = None, table_id: str = "",
           breakable: Iterable[str] = ()) -> str:
    """Rows as a table that fits the page: headings name the columns (default: the column with
    '_' as spaces, so a long name wraps); `breakable` columns hold long tokens (paths,
    hashes) that may break anywhere."""
    brk = frozenset(breakable)
    heads = headings or {}
    ident = f" id='{_e(table_id)}'" if table_id else ""
    out = [f"<table{ident}><tr>",
           *(f"<th>{_e(heads.get(c, c.replace('_', ' ')))}</th>" for c in columns), "</tr>"]
    for i, row in enumerate(rows):
        if i >= limit:
            out.append(f"<tr><td colspan={len(columns)}>... more rows in the CSV files</td></tr>")
            break
        out.append("<tr>" + "".join(
            f"<td class='brk'>{_cell(row.get(c))}</td>" if c in brk else
            f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _grid(result: Any) -> str:
    months = sorted({m.month for d in result.devices for m in d.months})
    if not months:
        return "<p>No device-months to judge.</p>"
    head = "".join(f"<th title='{_e(m)}'>{_e(m[2:4])}<br>{_e(m[5:])}</th>" for m in months)
    rows = [f"<table class='grid' id='compliance-grid'><tr><th>device</th>{head}</tr>"]
    for d in result.devices:
        by_month = {m.month: m for m in d.months}
        cells = []
        for month in months:
            m = by_month.get(month)
            if m is None:
                cells.append("<td class='cell'></td>")
                continue
            tip = f"{d.device} {month} {m.month_kind}: {m.status} - {m.reason}"
            mark = {"compliant": "✓", "off-track": "~", "late": "L", "pending-reboot": "R",
                    "failed": "F", "missing": "✗", "baseline-missing": "B"}.get(m.status, "")
            cells.append(f"<td class='cell status-{_e(m.status)}' style='background:"
                         f"{COLOURS.get(m.status, '#fff')}' title='{_e(tip)}'>{mark}</td>")
        rows.append(f"<tr><th>{_e(d.device)}</th>{''.join(cells)}</tr>")
    rows.append("</table>")
    legend = "".join(f"<span><i style='background:{c}'></i>{_e(s)}</span>"
                     for s, c in COLOURS.items())
    return "".join(rows) + f"<p class='legend'>{legend}</p>"


def _bars(title: str, counts: list[tuple[str, int]], colour: str = "#1565c0") -> str:
    """A horizontal bar chart as inline SVG."""
    if not counts:
        return f"<p>{_e(title)}: no data.</p>"
    top = max(n for _, n in counts) or 1
    width, row_h, label_w = 640, 20, 170
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' "
           f"height='{row_h * len(counts) + 24}' role='img' aria-label='{_e(title)}'>",
           f"<text x='0' y='14' font-size='13' font-weight='bold'>{_e(title)}</text>"]
    for i, (label, n) in enumerate(counts):
        y = 22 + i * row_h
        w = int((width - label_w - 60) * n / top)
        svg.append(f"<text x='0' y='{y + 13}' font-size='11'>{_e(label)}</text>"
                   f"<rect x='{label_w}' y='{y + 2}' width='{max(w, 1)}' height='{row_h - 6}' "
                   f"fill='{colour}'/><text x='{label_w + w + 4}' y='{y + 13}' "
                   f"font-size='11'>{n}</text>")
    svg.append("</svg>")
    return "".join(svg)


def _days_histogram(result: Any) -> str:
    buckets = [("0-2 days", 0, 2), ("3-7 days", 3, 7), ("8-14 days", 8, 14),
               ("15-30 days", 15, 30), ("31-60 days", 31, 60), ("> 60 days", 61, 10**6)]
    days = [m.days_to_install for d in result.devices for m in d.months
            if m.days_to_install is not None]
    counts = [(label, sum(1 for x in days if lo <= x <= hi)) for label, lo, hi in buckets]
    return _bars("Days from release to install (device-months)", counts)


def _failures(result: Any) -> str:
    failures: Counter[str] = Counter()
    for d in result.devices:
        for lc in d.lifecycles:
            if lc.failures:
                failures[f"{lc.kb or lc.key[:20]} {lc.error_codes}".strip()] += lc.failures
    return _bars("Failed installs by KB and error code (all devices)", failures.most_common(15),
                 "#c62828")


def _autopatch(result: Any) -> list[str]:
    """The Windows Autopatch hotpatch quality update report's views, from our evidence."""
    # lazy: only this path uses it (kept off this module's import cost)
    from hpforensics.timeline.intune import (DEVICE_HEADINGS, INTUNE_RING_COLUMNS, SUMMARY_HEADINGS,
                                         ring_summaries)

    rows = getattr(result, "autopatch", None) or []
    if not rows:
        return []
    rings = [dataclasses.asdict(r) for r in ring_summaries(rows)]
    devices = []
    for r in rows:
        row = dataclasses.asdict(r)
        row["as_of"] = _day(r.as_of)
        for months in ("fell_off_track", "baseline_missing"):  # wrap between months
            row[months] = row[months].replace(";", ", ")
        row["update_status"] = _Raw(f"<span class='status-{_status_class(r.update_status)}'>"
                                    f"{_e(r.update_status)}</span>")
        devices.append(row)
    return [
        "<h2 id='autopatch'>Windows Autopatch view: hotpatch quality updates</h2>",
        "<p class='small'>In the terms of Intune's hotpatch quality update report (per ring: Up "
        "to date, Hotpatched, Not up to date, In progress, % with the latest quality update, Not "
        "ready, Paused; per device: device name, OS build, update status, ring), computed from "
        "the devices' own logs as of each device's last event, with our columns beside. Rings "
        "come from <code>--rings</code>. Also in summary.csv and summary-devices.csv.</p>",
        _table(INTUNE_RING_COLUMNS, rings, headings=SUMMARY_HEADINGS, table_id="autopatch-rings"),
        "<p class='small'>Beside it, from our evidence:</p>",
        _table(["ring", *(c for c in SUMMARY_HEADINGS if c not in INTUNE_RING_COLUMNS)], rings,
               headings=SUMMARY_HEADINGS, table_id="autopatch-rings-ours"),
        _table(list(DEVICE_HEADINGS), devices, headings=DEVICE_HEADINGS,
               table_id="autopatch-devices"),
    ]


def _day(value: Any) -> Any:
    """A date-time as its day (a column that fits); anything else as it is."""
    return value.astimezone(dt.timezone.utc).date() if isinstance(value, dt.datetime) else value


def _status_class(status: str) -> str:
    return {"Up to date": "up", "Not up to date": "not"}.get(status, "other")


def _memory(result: Any) -> list[str]:
    """Per device and KB: installed per the logs vs live in memory (timeline --findings)."""

    memory = getattr(result, "memory", None) or {}
    if not memory:
        return []
    columns = [f.name for f in dataclasses.fields(KbCorrelation)]
    rows = [dataclasses.asdict(r) for device in sorted(memory) for r in memory[device]]
    return ["<h2 id='memory'>Installed per the logs vs live in memory</h2>",
            "<p class='small'>Logs prove an update was installed; only memory shows its patched "
            "code runs. The hotpatch expected live is the latest installed after the latest "
            "baseline; earlier ones of the quarter are superseded. Also in memory.csv.</p>",
            _table(columns, rows, headings={"logs_status": "installed per the logs",
                                            "memory_findings": "live in memory (findings)"},
                   table_id="memory-table", breakable=("patch_images",))]


def render_report(result: Any) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    status = Counter(m.status for d in result.devices for m in d.months)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Hotpatch compliance report</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>Hotpatch compliance report</h1>",
        f"<p class='small'>hpforensics {__version__}, generated {now}. {len(result.inputs)} "
        f"input(s), {result.records} records read, {result.events} events, "
        f"{len(result.devices)} device(s).</p>",
    ]
    if result.warnings:
        parts.append("<h2>Input problems</h2><ul class='warn'>" +
                     "".join(f"<li>{_e(w)}</li>" for w in result.warnings) + "</ul>")
    parts += ["<h2>Device × month</h2>", _grid(result),
              _bars("Device-months by status", [(s, status[s]) for s in COLOURS if status[s]]),
              "<h2>Time to compliance</h2>", _days_histogram(result),
              "<h2>Failures</h2>", _failures(result),
              *_autopatch(result), *_memory(result),
              "<h2>Devices</h2>",
              _table(["device", "product", "status", "compliance_rate", "months_compliant",
                      "months_noncompliant", "months_off_track", "months_baseline_missing",
                      "update_failures", "last_installed_kb", "os_build", "hotpatch_enrolment",
                      "first_event", "last_event"],
                     ({**d.summary, "first_event": _day(d.summary.get("first_event")),
                       "last_event": _day(d.summary.get("last_event"))} for d in result.devices),
                     headings={"hotpatch_enrolment": "enrolled", "compliance_rate": "rate",
                               "months_noncompliant": "months not compliant",
                               "update_failures": "failed installs",
                               "last_installed_kb": "last KB installed",
                               "first_event": "logs from", "last_event": "logs to"},
                     table_id="devices"),
              "<h2>Fleet by month</h2>",
              _table(["month", "month_kind", "expected_kb", "devices", "compliant",
                      "noncompliant", "unjudged", "compliance_rate", "median_days_to_install",
                      "off_track", "baseline_missing", "failed"],
                     month_rows(m for d in result.devices for m in d.months)),
              "<h2>Non-compliant months</h2>",
              _table(["device", "month", "month_kind", "expected_kb", "installed_kb", "status",
                      "reason"],
                     ({"device": m.device, "month": m.month, "month_kind": m.month_kind,
                       "expected_kb": m.expected_kb, "installed_kb": m.installed_kb,
                       "status": m.status, "reason": m.reason}
                      for d in result.devices for m in d.months if m.compliant is False)),
              "<h2>Inputs</h2>",
              _table(["source", "records", "relevant", "sha256"],
                     ({"source": s.source, "records": s.records, "relevant": s.relevant,
                       "sha256": s.sha256} for s in result.inputs),
                     breakable=("source", "sha256")),
              "<p class='small'>Classification matches KB numbers and OS builds against the "
              "release calendar; no event log marks an update as a hotpatch. Whether patched "
              "code is live in memory is a separate question: give <code>timeline --findings"
              "</code> (or see <code>hpforensics correlate</code>).</p></body></html>"]
    return "".join(parts)


def write_report(path: Path, result: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result), encoding="utf-8")
    return path
