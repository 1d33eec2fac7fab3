"""`hpforensics timeline`: event logs -> per-device update timelines and monthly compliance."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import ExitCode, UsageError
from hpforensics.textsafe import shown


def _date(value: Optional[str], opt: str) -> Optional[dt.date]:  # noqa: UP007
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{opt} must be a date YYYY-MM-DD, not {value!r}") from None


def timeline(
    logs: List[Path] = typer.Argument(  # noqa: UP006
        ..., help=".evtx files, folders, zip archives or triage collections; wevtutil XML, "
                  "Get-WinEvent JSON and .etl exports too."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the outputs."),
    devices: Optional[str] = typer.Option(  # noqa: UP007
        None, "--devices", help="Only these devices (comma-separated names)."),
    start: Optional[str] = typer.Option(  # noqa: UP007
        None, "--from", help="First day, YYYY-MM-DD."),
    end: Optional[str] = typer.Option(None, "--to", help="Last day, YYYY-MM-DD."),  # noqa: UP007
    parser: str = typer.Option(
        "evtx", "--parser",
        help="evtx (default: C decoder for common records, Rust parser for the rest), "
             "evtx-json (Rust parser for every record) or python-evtx."),
    product: Optional[str] = typer.Option(  # noqa: UP007
        None, "--product", help="windows11-24h2, windows11-25h2, windows11-26h2 or "
                               "windows-server-2025 (default: inferred from the builds booted)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Processes reading files in parallel."),
    grace_days: Optional[int] = typer.Option(  # noqa: UP007
        None, "--grace-days", help="Days after release to comply (default: by the next "
                                   "month's release)."),
    hash_inputs: bool = typer.Option(True, "--hash/--no-hash", help="SHA-256 every input."),
    html: bool = typer.Option(True, "--html/--no-html", help="Write report.html."),
    scheduler: Optional[str] = typer.Option(  # noqa: UP007
        None, "--scheduler",
        help="Run per device on this Dask scheduler (tcp://host:8786); "
             "workers need hpforensics and the logs/output on shared storage."),
    workers: Optional[int] = typer.Option(  # noqa: UP007
        None, "--workers", help="Run per device on a local Dask cluster of N worker processes."),
    rings: Optional[Path] = typer.Option(  # noqa: UP007
        None, "--rings", help="CSV of device -> Autopatch ring / quality update policy (columns "
                              "device and ring, or Intune's 'Device name' and 'Deployment "
                              "ring'); summary.csv is per ring."),
    findings: Optional[List[str]] = typer.Option(  # noqa: UP006,UP007
        None, "--findings", help="[DEVICE=]FILE: findings JSON of dump analyze / live for a "
                                 "device; report.html then shows installed per the logs vs live "
                                 "in memory. Repeatable."),
) -> None:
    """Write events, timeline (Timesketch CSV), updates, compliance and devices as CSV and
    JSONL, plus a self-contained report.html. Exit 3 when some input was damaged."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.timeline.intune import load_rings
    from hpforensics.timeline.pipeline import TimelineOptions
    from hpforensics.runs.timeline import run_timeline
    from hpforensics.kb.calendar import PRODUCTS

    if product and product not in PRODUCTS:
        raise UsageError(f"--product must be one of {', '.join(PRODUCTS)}")
    first, last = _date(start, "--from"), _date(end, "--to")
    if first and last and first > last:
        raise UsageError("--from is after --to")
    opts = TimelineOptions(
        rings=load_rings(rings) if rings else {},
        findings=tuple(_findings_spec(s) for s in findings or ()),
        parser=parser,
        devices=frozenset(d.strip().lower() for d in (devices or "").split(",") if d.strip()),
        start=first, end=last, product=product, jobs=jobs, grace_days=grace_days,
        hash_inputs=hash_inputs,
    )
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.staging import staged_outputs

    # written in a staging folder, put in place when complete (interrupted: nothing is)
    if scheduler or workers:
        with staged_outputs(output) as stage:
            partial = _fleet(logs, stage, opts, html, scheduler, workers, shown_as=output)
            _custody(logs, stage, opts, html, rings=rings)
        if partial:
            raise typer.Exit(int(ExitCode.PARTIAL))
        return
    with staged_outputs(output) as stage:
        result = run_timeline(logs, stage, opts, html=html)
        _custody(logs, stage, opts, html, {s.source: s.sha256 for s in result.inputs if s.sha256},
                 rings=rings)
    for warning in [*result.warnings, *result.notices]:
        typer.echo(f"hpforensics: warning: {warning}", err=True)
    judged = [m for d in result.devices for m in d.months if m.compliant is not None]
    good = sum(1 for m in judged if m.compliant)
    typer.echo(
        f"{len(result.inputs)} input(s), {result.records} records, {result.events} events, "
        f"{len(result.devices)} device(s); {good}/{len(judged)} device-months compliant; "
        f"outputs in {shown(output)}"
    )
    if result.partial:
        typer.echo("hpforensics: some input was damaged or only partly readable: every intact "
                   "record was kept (exit 3)", err=True)
        raise typer.Exit(int(ExitCode.PARTIAL))


def _findings_spec(spec: str) -> tuple[str, Path]:
    """'DEVICE=FILE' or 'FILE' (a file whose name holds '=' is taken whole)."""
    device, sep, file = spec.partition("=")
    if not sep or Path(spec).exists() or not device.strip():
        return "", Path(spec)
    return device.strip(), Path(file)


def _custody(logs: List[Path], output: Path, opts, html: bool,  # noqa: UP006
             hashed: Optional[dict] = None, rings: Optional[Path] = None) -> None:  # noqa: UP007
    """custody.json beside the outputs: the tool, the options that shape the results (not
    --jobs/--workers) and every input; with --no-hash the inputs are named, not hashed.
    `hashed`: the SHA-256 the reader took of each log it read (not read again)."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.custody import custody_block, write_custody

    options = {"parser": opts.parser, "devices": opts.devices, "from": opts.start, "to": opts.end,
               "product": opts.product, "grace_days": opts.grace_days, "html": html,
               "rings": str(rings) if rings else None,
               "findings": [f"{d}={p}" if d else str(p) for d, p in opts.findings]}
    # memory findings are evidence too; the rings file shapes the summary
    given = [*logs, *(p for _, p in opts.findings), *([rings] if rings else [])]
    block = custody_block("timeline", given if opts.hash_inputs else [], options,
                          references=[] if opts.hash_inputs else given, hashed=hashed)
    write_custody(output / "custody.json", block)


def _fleet(logs: List[Path], output: Path, opts, html: bool, scheduler: Optional[str],  # noqa: UP006,UP007
           workers: Optional[int], shown_as: Path) -> bool:  # noqa: UP007
    """The same outputs, devices as tasks on Dask (hpforensics.fleet), plus Parquet
    partitions and failures.csv; True when partial. `output`: the staging folder; the
    messages name `shown_as`, where the outputs end up."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.fleet.cluster import ClusterSpec, failures_warning
    from hpforensics.fleet.timeline import run_fleet_timeline

    result = run_fleet_timeline(logs, output, opts, ClusterSpec(scheduler, workers), html=html)
    for warning in [*result.warnings, *result.notices]:
        typer.echo(f"hpforensics: warning: {warning}", err=True)
    if result.failures:
        typer.echo(failures_warning(result.failures, shown_as / "failures.csv", "task"),
                   err=True)
    typer.echo(
        f"{result.partitions} partition(s), {result.inputs} input(s), {result.records} records, "
        f"{result.events} events, {result.devices} device(s); {result.months_compliant}/"
        f"{result.months_judged} device-months compliant; outputs in {shown(shown_as)}"
    )
    if result.partial:
        typer.echo("hpforensics: some input was damaged or some task failed: every other "
                   "result was kept (exit 3)", err=True)
    return result.partial


def register(app: typer.Typer) -> None:
    app.command("timeline")(timeline)
