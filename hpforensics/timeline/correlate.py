"""Join what the logs say was installed with what memory shows is live.

Logs prove a KB was installed; only memory proves its patched code runs (the anchors: KB
presence does not prove hotpatches are applied). Hotpatches are cumulative within a quarter and
re-applied at boot until the next baseline, so the one expected live is the latest hotpatch
installed after the latest installed baseline; earlier ones of the quarter are superseded.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from hpforensics.errors import InputError, UsageError
from hpforensics.timeline.lifecycle import HOTPATCH_CLASSES
from hpforensics.timeline.rows import lifecycle_row
from hpforensics.cells import plain

log = logging.getLogger(__name__)


@dataclass
class KbCorrelation:
    device: str
    kb: str
    update_class: str
    release_month: str
    logs_status: str  # the lifecycle status, or "not in logs"
    installed_at: str
    expected_live: bool
    memory_findings: int  # hotpatch findings naming this KB
    patch_images: str
    max_sequence: int | None
    verdict: str  # installed and live / installed, not live / live, not in logs / ...


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        raise InputError(path, "no such file: run `hpforensics timeline -o DIR` first") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON Lines ({exc.msg})", exc.pos) from None


def load_findings(path: Path) -> list[dict[str, Any]]:
    """Findings as written by `pe diff` / `dump analyze` / `live` (a list, or an object with a
    "findings" list)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON ({exc.msg})", exc.pos) from None
    if isinstance(data, dict):
        data = data.get("findings", [])
    if not isinstance(data, list):
        raise InputError(path, "expected a list of findings")
    return [f for f in data if isinstance(f, dict)]


def correlate(updates: list[dict[str, Any]], findings: list[dict[str, Any]],
              device: str | None = None) -> list[KbCorrelation]:
    devices = sorted({u["device"] for u in updates})
    if device is None:
        if len(devices) > 1:
            raise UsageError("the timeline holds several devices (" + ", ".join(devices[:5]) +
                             "): name one with --device")
        device = devices[0] if devices else ""
    mine = [u for u in updates if u["device"].lower() == device.lower()]
    if updates and not mine:
        raise UsageError(f"device {device!r} is not in the timeline")
    live: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in findings:
        if f.get("verdict") == "hotpatch" and f.get("kb"):
            live[str(f["kb"]).upper()].append(f)
    expected = _expected_live(mine)
    rows: list[KbCorrelation] = []
    seen = set()
    for u in mine:
        kb = (u.get("kb") or "").upper()
        if not kb or (u.get("update_class") not in HOTPATCH_CLASSES and kb not in live):
            continue
        seen.add(kb)
        rows.append(_row(device, kb, u, live.get(kb, []), kb == expected))
    for kb, hits in sorted(live.items()):
        if kb not in seen:
            rows.append(_row(device, kb, None, hits, False))
    return rows


def _expected_live(updates: list[dict[str, Any]]) -> str:
    installed = sorted((u for u in updates if u.get("installed_at")),
                       key=lambda u: u["installed_at"])
    last_baseline = max((u["installed_at"] for u in installed
                         if u.get("update_class") in ("baseline", "standard", "out-of-band")),
                        default="")
    hot = [u for u in installed if u.get("update_class") in HOTPATCH_CLASSES
           and u["installed_at"] > last_baseline]
    return (hot[-1].get("kb") or "").upper() if hot else ""


def _row(device: str, kb: str, u: dict[str, Any] | None, hits: list[dict[str, Any]],
         expected: bool) -> KbCorrelation:
    images = sorted({str(f.get("patch_image") or "") for f in hits} - {""})
    seqs = [int(f["sequence"]) for f in hits if f.get("sequence") is not None]
    installed = bool(u and u.get("installed_at"))
    if u is None:
        verdict = "live in memory, not in the logs"
    elif installed and hits:
        verdict = "installed and live"
    elif installed and expected:
        verdict = "installed, NOT live in memory"
    elif installed:
        verdict = "installed, superseded (not expected live)"
    elif hits:
        verdict = "live in memory, but the logs show no successful install"
    else:
        verdict = "not installed"
    return KbCorrelation(
        device=device, kb=kb,
        update_class=(u or {}).get("update_class", ""),
        release_month=(u or {}).get("release_month", ""),
        logs_status=(u or {}).get("status", "not in logs"),
        installed_at=(u or {}).get("installed_at") or "",
        expected_live=expected, memory_findings=len(hits), patch_images=";".join(images),
        max_sequence=max(seqs) if seqs else None, verdict=verdict,
    )


def correlate_dir(timeline_dir: Path, findings_path: Path,
                  device: str | None = None) -> list[KbCorrelation]:
    updates = load_jsonl(timeline_dir / "updates.jsonl")
    return correlate(updates, load_findings(findings_path), device)


def lifecycle_rows(lifecycles: Iterable[Any]) -> list[dict[str, Any]]:
    """Update lifecycles as the plain rows of updates.jsonl (what correlate() reads)."""

    return [{c: plain(c, v) for c, v in lifecycle_row(lc).items()} for lc in lifecycles]


@dataclass
class MemoryFindings:
    """Memory findings given to `timeline --findings [DEVICE=]FILE`, by device. A file named
    without a device belongs to the device its `live:<host>` findings name, or to the only
    device of the timeline (bind())."""

    by_device: dict[str, list[dict[str, Any]]]
    unbound: list[tuple[Path, list[dict[str, Any]]]]

    @classmethod
    def load(cls, specs: Iterable[tuple[str, Path]]) -> "MemoryFindings":
        by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
        unbound = []
        for device, path in specs:
            findings = load_findings(path)
            hosts = {str(f.get("source", ""))[5:].lower() for f in findings
                     if str(f.get("source", "")).startswith("live:")}
            if not device and len(hosts) == 1:
                device = hosts.pop()
            if device:
                by_device[device.lower()].extend(findings)
            else:
                unbound.append((path, findings))
        return cls(dict(by_device), unbound)

    def bind(self, devices: Iterable[str]) -> None:
        """Give unbound files to the only device; UsageError for files or devices that do not
        fit the timeline."""
        names = {d.lower(): d for d in devices}
        for device in self.by_device:
            if device not in names:
                raise UsageError(f"--findings names device {device!r}, which is not in the "
                                 "timeline (" + ", ".join(sorted(names.values())[:5]) + ")")
        if self.unbound:
            if len(names) != 1:
                raise UsageError(f"--findings {self.unbound[0][0]}: no device named and the "
                                 "timeline holds several: give it as DEVICE=FILE")
            only = next(iter(names))
            for _, findings in self.unbound:
                self.by_device.setdefault(only, []).extend(findings)
            self.unbound = []

    def correlate(self, device: str, lifecycles: Iterable[Any]) -> list[KbCorrelation] | None:
        """The device's rows of correlate(), None when no findings are given for it."""
        findings = self.by_device.get(device.lower())
        if findings is None:
            return None
        return correlate(lifecycle_rows(lifecycles), findings, device)
