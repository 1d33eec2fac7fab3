"""Findings and summaries: the one result document every source fills and every renderer reads.

The memory-image path, the live scanner and `pe diff` all produce these, so one report reader
serves them all. Fields are plain values (ints, str, bytes) so JSON/CSV rendering needs no
knowledge of the engine.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Verdict(str, enum.Enum):
    """Why a byte in memory differs from what the loader would have produced."""

    LOADER = "loader"  # relocation, import binding, CFG pointer or dynamic relocation
    HOTPATCH = "hotpatch"  # redirect written by the hotpatch engine for a matching patch image
    UNVERIFIED = "unverified"  # bytes a rule covers whose value nothing here could check
    UNEXPLAINED = "unexplained"  # anything else: the analyst's lead
    UNAVAILABLE = "unavailable"  # page not present in the source; never counted as modified

    def __str__(self) -> str:  # so f-strings and CSV show "hotpatch", not "Verdict.HOTPATCH"
        return self.value


@dataclass(frozen=True)
class Finding:
    """One changed (or unreadable) byte range of one module in one address space."""

    source: str  # "dump:<file>", "live:<host>", "file:<path>"
    pid: int | None  # None for kernel space and for carved files
    process: str
    module: str  # file name of the image, e.g. "ntdll.dll"
    module_path: str
    module_base: int
    address: int  # virtual address of the first differing byte
    rva: int
    size: int
    verdict: Verdict
    reason: str  # one line: which rule produced the verdict
    expected: bytes = b""  # what the loader would have produced
    actual: bytes = b""  # what memory holds
    disassembly: str = ""  # of `actual`, when it decodes
    original_disassembly: str = ""  # of `expected` from the same instruction boundary
    branch_target: int | None = None  # where the redirect at `address` leads, if it is one
    target_owner: str = ""  # module or region that holds branch_target
    patch_image: str = ""  # path of the hotpatch image for HOTPATCH verdicts
    patch_base: int | None = None
    sequence: int | None = None  # hotpatch sequence number
    kb: str = ""  # KB that ships the patch image, given a manifest
    function_rva: int | None = None  # base-image function the patch replaces
    extra: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass
class ModuleSummary:
    """Page accounting for one module: what was checked and what it came to."""

    source: str
    pid: int | None
    process: str
    module: str
    module_path: str
    module_base: int
    size: int
    reference: str  # "disk:<path>", "manifest:<KB>", "store:<db>", "none"
    pages_total: int = 0
    pages_verified: int = 0  # equal to the reference after masking
    pages_loader: int = 0  # differ only where the loader legitimately writes
    pages_hotpatched: int = 0
    pages_unexplained: int = 0
    pages_unverified: int = 0  # loader-written slots whose value nothing could check
    pages_unavailable: int = 0
    pages_skipped: int = 0  # not read: known shared with the on-disk section (live, Windows)
    # Hotpatch extension pages mapped past SizeOfImage (24H2+): counted apart from the image.
    extension_pages: int = 0  # pages of the mapping past SizeOfImage
    extension_unexplained: int = 0  # of those, pages holding something no rule explains
    hpat_stubs_used: int = 0  # HPAT stubs whose pointer leads into a patch image (or back)
    hpat_stubs_free: int = 0  # HPAT stubs written but with an empty pointer slot
    extension_content: str = ""  # what the pages held, e.g. "SCPCFGES page; HPAT 2 pages"
    status: str = "ok"  # ok / no-reference / error: <reason>
    # What the loader put past VirtualSize where the file holds padding there (sources
    # disagree, docs/engine.md): "zero-filled", "file padding", "mixed" or "" (nothing to see).
    section_tails: str = ""


@dataclass(frozen=True)
class YaraMatch:
    """One YARA rule hit in a file or a memory region, with the verdict of that region."""

    source: str
    pid: int | None
    process: str
    module: str  # module or file the region belongs to
    region_base: int
    address: int  # address (memory) or file offset of the matched string
    rule: str
    namespace: str
    tags: tuple[str, ...] = ()
    string_id: str = ""
    matched: bytes = b""
    verdict: str = ""  # verdict of the changed region the hit lies in; "" for files / --yara-all
    meta: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass
class ScanResult:
    """What one run produced: findings, per-module summaries and the inputs it read."""

    findings: list[Finding] = field(default_factory=list)
    modules: list[ModuleSummary] = field(default_factory=list)
    yara: list[YaraMatch] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
