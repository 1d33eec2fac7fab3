"""`hpforensics timeline` and `correlate` end to end, as a user runs them."""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

from hpforensics.model import Finding, Verdict

FLEET = Path(__file__).resolve().parents[2] / "samples" / "evtx"


def test_timeline_fleet_outputs(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli("timeline", FLEET, "-o", out, "--no-hash", "--jobs", "2")
    assert proc.returncode == 3, proc.stderr  # HP-WS-007's System.evtx has a broken chunk
    assert "HP-WS-007" in proc.stderr and "at offset 0x11000" in proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("events", "timeline", "compliance", "devices", "updates", "inputs", "months"):
        assert (out / f"{name}.csv").stat().st_size > 0 and (out / f"{name}.jsonl").exists()
    with open(out / "timeline.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"message", "datetime", "timestamp_desc"} <= set(rows[0])
    assert rows == sorted(rows, key=lambda r: r["datetime"]) or all(r["datetime"] for r in rows)
    assert any(r["timestamp_desc"] == "Update Effective" for r in rows)
    with open(out / "devices.csv", newline="") as fh:
        devices = list(csv.DictReader(fh))
    assert len(devices) == 7
    compliance = [json.loads(line) for line in open(out / "compliance.jsonl")]
    assert len(compliance) == 7 * 16
    months = {r["month"]: r for r in map(json.loads, open(out / "months.jsonl"))}
    assert len(months) == 16 and months["2025-09"]["off_track"] == 2
    assert months["2025-11"]["baseline_missing"] == 1 and months["2025-02"]["compliance_rate"] == 1


def test_timeline_filters(cli, tmp_path: Path) -> None:
    out = tmp_path / "one"
    proc = cli("timeline", FLEET / "HP-WS-005", "-o", out, "--devices", "hp-ws-005",
               "--from", "2025-07-01", "--to", "2025-10-31", "--no-html")
    assert proc.returncode == 0, proc.stderr
    months = [json.loads(line)["month"] for line in open(out / "compliance.jsonl")]
    assert months == ["2025-07", "2025-08", "2025-09", "2025-10"]
    assert not (out / "report.html").exists()


def test_csv_cells_are_safe(cli, tmp_path: Path) -> None:
    """Event text an attacker controls cannot become a formula or break a line."""
    export = tmp_path / "export.xml"
    ns = "http://schemas.microsoft.com/win/2004/08/events/event"
    export.write_text(
        f"<Event xmlns='{ns}'><System><Provider Name='Microsoft-Windows-WindowsUpdateClient'/>"
        "<EventID>19</EventID><TimeCreated SystemTime='2025-02-12T10:00:00.0000000Z'/>"
        "<EventRecordID>1</EventRecordID><Channel>System</Channel><Computer>=cmd|' /C calc'!A0"
        "</Computer></System><EventData><Data Name='updateTitle'>@SUM(1+1)\nline two "
        "(KB5052105)</Data></EventData></Event>", encoding="utf-8")
    out = tmp_path / "out"
    proc = cli("timeline", export, "-o", out, "--no-html")
    assert proc.returncode == 0, proc.stderr
    for name in ("events", "timeline", "compliance", "devices", "updates"):
        text = (out / f"{name}.csv").read_text()
        for row in csv.reader(text.splitlines()):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@")), (name, cell)
        assert "\nline two" not in text
    events = list(csv.DictReader(open(out / "events.csv", newline="")))
    assert events[0]["device"].startswith("'=") and events[0]["update_class"] == "hotpatch"


def test_the_decoder_and_the_parser_give_the_same_outputs(cli, shared_data: Path,
                                                          tmp_path: Path) -> None:
    """`--parser evtx-json` (the Rust parser for every record, the decoder's reference) and the
    default give byte-identical outputs on the sample fleet and the real logs together, from
    the command line; only the parser named in the custody record differs."""
    logs = tmp_path / "logs"
    shutil.copytree(FLEET, logs / "fleet")
    (logs / "real").mkdir()
    for log in sorted((shared_data / "evtx").glob("*.evtx")):
        shutil.copyfile(log, logs / "real" / log.name)
    outs = {}
    for parser in ("evtx", "evtx-json"):
        outs[parser] = out = tmp_path / parser
        proc = cli("timeline", logs, "-o", out, "--parser", parser, "--no-html", "--jobs", "2")
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    names = sorted(p.name for p in outs["evtx"].iterdir() if p.suffix in (".csv", ".jsonl"))
    assert len(names) >= 14 and (outs["evtx"] / "events.csv").stat().st_size > 100_000
    for name in names:
        assert (outs["evtx"] / name).read_bytes() == (outs["evtx-json"] / name).read_bytes(), name


def test_real_logs_partial_and_python_evtx(cli, shared_data: Path, tmp_path: Path) -> None:
    proc = cli("timeline", shared_data / "evtx" / "plaso-System2.evtx", "-o", tmp_path / "a")
    assert proc.returncode == 3 and "at offset 0x21000" in proc.stderr
    proc = cli("timeline", shared_data / "evtx" / "system.evtx", "-o", tmp_path / "b",
               "--parser", "python-evtx", "--no-html")
    assert proc.returncode == 3 and "1555 lost" in proc.stderr and "--parser evtx" in proc.stderr
    proc = cli("timeline", tmp_path / "missing.evtx", "-o", tmp_path / "c")
    assert proc.returncode == 2 and proc.stderr.startswith("hpforensics: error:")


def test_report_renders_in_chromium(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cli("timeline", FLEET, "-o", out, "--no-hash")
    page = (out / "report.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "<script" not in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is needed: `make test` installs it (make test-tools)"
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
            f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run([*base, "--dump-dom", (out / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert "compliance-grid" in dom.stdout and "HP-WS-006" in dom.stdout
    assert dom.stdout.count("status-baseline-missing") == 2
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,900",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120)
    pixels = _png_pixels(shot.read_bytes())
    assert len(set(pixels)) > 10  # not a blank page: text and coloured cells
    assert "id='autopatch-rings'" in page and "Hotpatched" in page  # the Autopatch view


def test_report_tables_fit_the_page(cli, tmp_path: Path) -> None:
    """Every table of report.html ends inside the page's text column (the right edge of the
    heading, a block as wide as the body) at 1024 and 1280 px, and the page does not scroll
    sideways: measured in headless Chromium through the DOM of a copy with a measuring script
    (the report itself carries no script)."""
    out = tmp_path / "out"
    live = tmp_path / "live.json"
    live.write_text(json.dumps([{"source": "live:HP-WS-001", "verdict": "hotpatch",
                                 "kb": "KB5089466", "patch_image": "C:\\Windows\\WinSxS\\"
                                 "amd64_microsoft-windows-os-kernel_31bf3856ad364e35_10.0.26100."
                                 "8390_none_0123456789abcdef\\ntoskrnl_hotpatch.exe",
                                 "sequence": 3}]))
    cli("timeline", FLEET, "-o", out, "--no-hash", "--findings", live)
    page = (out / "report.html").read_text()
    assert "id='memory-table'" in page and "id='devices'" in page
    probe = out / "measure.html"
    probe.write_text(page.replace("</body>", _MEASURE + "</body>"))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is needed: `make test` installs it (make test-tools)"
    for width in (1024, 1280):
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                              f"--user-data-dir={tmp_path / 'p'}", f"--window-size={width},900",
                              "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        import html
        import re

        found = re.search(r'data-measure="([^"]*)"', dom)
        assert found, dom[-500:]
        m = json.loads(html.unescape(found.group(1)))
        assert width - 40 <= m["viewport"] <= width, m  # the window size took effect
        ids = {t[0] for t in m["tables"]}
        assert {"devices", "autopatch-rings", "autopatch-devices", "memory-table",
                "compliance-grid"} <= ids
        assert m["content"] < m["viewport"], m
        wide = [t for t in m["tables"] if t[1] > m["content"]]
        assert not wide, (width, wide, m["content"])
        assert m["scroll"] <= m["viewport"], m


_MEASURE = """<script>
const vw = document.documentElement.clientWidth;
const content = Math.ceil(document.querySelector('h1').getBoundingClientRect().right);
const tables = [...document.querySelectorAll('table')].map(
  (t, i) => [t.id || 'table-' + i, Math.ceil(t.getBoundingClientRect().right)]);
document.body.setAttribute('data-measure', JSON.stringify(
  {viewport: vw, content, scroll: document.documentElement.scrollWidth, tables}));
</script>"""


def _png_pixels(png: bytes) -> bytes:
    """The decompressed image data of a PNG (filter bytes included; enough to tell blank)."""
    import struct
    import zlib

    assert png.startswith(b"\x89PNG")
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        if png[pos + 4:pos + 8] == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    return zlib.decompress(idat)


def test_correlate_logs_with_memory(cli, tmp_path: Path) -> None:
    out = tmp_path / "tl"
    cli("timeline", FLEET / "HP-WS-001", "-o", out, "--no-html", "--no-hash")
    live = Finding(source="live:HP-WS-001", pid=4, process="System", module="ntoskrnl.exe",
                   module_path="", module_base=0, address=0x1000, rva=0x1000, size=5,
                   verdict=Verdict.HOTPATCH, reason="redirect to patch image",
                   patch_image="hotpatch_KB5089466.sys", sequence=9, kb="KB5089466")
    stale = dataclasses.replace(live, kb="KB9999999", sequence=1)
    rows = [{k: (v.value if isinstance(v, Verdict) else v) for k, v in dataclasses.asdict(f).items()
             if not isinstance(v, bytes)} for f in (live, stale)]
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps(rows))
    proc = cli("correlate", "--timeline", out, "--findings", findings, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    by_kb = {r["kb"]: r for r in json.loads(proc.stdout)}
    latest = by_kb["KB5089466"]
    assert latest["verdict"] == "installed and live" and latest["expected_live"]
    assert by_kb["KB5089466"]["max_sequence"] == 9
    assert by_kb["KB5052105"]["verdict"].startswith("installed, superseded")
    assert by_kb["KB9999999"]["verdict"] == "live in memory, not in the logs"
