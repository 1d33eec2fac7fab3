"""Rows for `store lookup`: the version scores, then every page that matches no version."""
from __future__ import annotations

from dataclasses import dataclass

from hpforensics.kb.store import ModuleMatch


@dataclass(frozen=True)
class LookupRow:
    row: str  # "best", "candidate" or "unmatched-page"
    image: str
    timestamp: str  # TimeDateStamp as 0x........
    size_of_image: int | None
    kbs: str
    matched: int | None  # pages equal at the same RVA
    compared: int | None  # pages the stored version has at the RVAs given
    rva: int | None
    address: int | None
    note: str = ""


def lookup_rows(match: ModuleMatch, base: int = 0) -> list[LookupRow]:
    rows: list[LookupRow] = []
    for score in match.candidates:
        v = score.version
        best = match.best is not None and score.version.id == match.best.version.id
        note = ("exact" if match.exact else "nearest") if best else ""
        rows.append(LookupRow("best" if best else "candidate", v.name, f"{v.timestamp:#010x}",
                              v.size_of_image, " ".join(v.kbs), score.matched, score.compared,
                              None, None, note))
    for rva in match.unmatched:
        hits = match.elsewhere.get(rva, [])
        note = "; ".join(f"same as {h.name} {h.timestamp:#010x} rva {h.rva:#x}" for h in hits[:3])
        rows.append(LookupRow("unmatched-page", match.name, "", None, "", None, None, rva,
                              base + rva if base else None, note or "matches no stored page"))
    return rows
