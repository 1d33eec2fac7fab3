"""Hotpatch extension pages: the part of an image mapping past SizeOfImage (Windows 11 24H2+).

On 24H2 the memory manager maps every hotpatchable image with extra execute-read pages after
the image (docs/hotpatch-format.md, "Extension pages"). They are where the kernel puts the SCP
CFG page (a fixed-up copy of one of ntdll's SCPCFG* sections) and the HPAT stubs and pointer
slots that hotpatch redirects run through, and so a place an attacker can hide code that every
scanner which stops at SizeOfImage (or excludes these pages, as EDRs now do) never reads.

Every byte is accounted for, page by page, by content rather than by an assumed position:
- a page of zeros: reserved, unused;
- an SCP CFG page: equal to one of ntdll's SCPCFG* sections as mapped in the same space, but
  for the immediates the kernel fixes up (the CFG bitmap view, pointers into ntdll);
- an HPAT stub page (entries `FF 25 FA 0F 00 00 CC CC` or zero) and the pointer page after it:
  each used slot must lead into a patch image whose IMAGE_HOT_PATCH_BASE names this image, or
  back into the image itself; an empty slot is a free stub;
- anything else is `unexplained`, with bytes, disassembly and where a branch leads.
Pages the source cannot read are counted, not reported: reserved extension pages are usually
decommitted (VirtualProtect fails on them with STATUS_NOT_COMMITTED).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from hpforensics.reference.patches import PatchImage, patches_for
from hpforensics.disasm import branch_target, disassemble
from hpforensics.errors import InputError
from hpforensics.model import Finding, Verdict
from hpforensics.pe.structures import HPAT_ENTRY_SIZE, HPAT_SLOT_DISTANCE, HPAT_STUB_X64
from hpforensics.reference.headers import parse_headers
from hpforensics.space import PAGE_SIZE, MappedImage

if TYPE_CHECKING:
    from hpforensics.classify.verdicts import Context

MERGE_GAP = 8
MAX_BYTES = 64
MAX_RUNS = 64  # unexplained runs listed one by one per extension page
# SCPCFG* section header: offsets of dispatch, dispatch-ES, validate, validate-ES, invalid-call
# handler (ynwarcs, "CFG in Windows 11 24H2": the kernel asserts the first four are fixed).
SCP_FUNCTION_OFFSETS = (0x40, 0xC0, 0x140, 0x1C0)
SCP_FIXUP_FUNCTIONS = 5  # the kernel writes an 8-byte immediate at func_offset[i] + 2, i < 5
SCP_NAMES = ("SCPCFG", "SCPCFGES", "SCPCFGFP", "SCPCFGNP")
ZERO_PAGE = bytes(PAGE_SIZE)


@dataclass
class ExtensionResult:
    findings: list[Finding] = field(default_factory=list)
    pages: int = 0
    unexplained_pages: int = 0
    absent_pages: int = 0
    stubs_used: int = 0
    stubs_free: int = 0
    parts: list[str] = field(default_factory=list)

    @property
    def content(self) -> str:
        return "; ".join(self.parts)


def scp_sections(ctx: "Context") -> dict[str, tuple[int, bytes]] | None:
    """ntdll's SCPCFG* sections as mapped in this space: name -> (address, bytes); None when
    the space holds no readable ntdll (kernel space, a carved file)."""
    if ctx.scp is not None:
        return ctx.scp or None
    found: dict[str, tuple[int, bytes]] = {}
    ntdll = next((m for m in ctx.amap.images if m.name.lower() == "ntdll.dll"), None)
    if ntdll is not None:
        head = ctx.space.read_exact(ntdll.base, PAGE_SIZE)
        try:
            headers = parse_headers(head, ntdll.path, mapped=True) if head else None
        except InputError:
            headers = None
        for s in headers.sections if headers else ():
            if s.name.upper() in SCP_NAMES and 0 < s.vsize <= PAGE_SIZE:
                data = ctx.space.read_exact(ntdll.base + s.va, s.vsize)
                if data is not None:
                    found[s.name.upper()] = (ntdll.base + s.va, data)
    ctx.scp = found
    return found or None


def _is_scp_shaped(page: bytes) -> bool:
    return struct.unpack_from("<4I", page, 0) == SCP_FUNCTION_OFFSETS


def _runs(page: bytes, lo: int = 0, hi: int = PAGE_SIZE) -> list[tuple[int, int]]:
    """[start, end) runs of non-zero bytes in page[lo:hi], merged across short zero gaps."""
    out: list[list[int]] = []
    i = lo
    while i < hi:
        if page[i]:
            j = i
            while j < hi and page[j]:
                j += 1
            if out and i - out[-1][1] <= MERGE_GAP:
                out[-1][1] = j
            else:
                out.append([i, j])
            i = j
        else:
            i += 1
    return [(a, b) for a, b in out]


class ExtensionVerifier:
    def __init__(self, ctx: "Context", image: MappedImage, timestamp: int | None,
                 checksum: int | None, machine: int, redirect_stubs: set[int]) -> None:
        self.ctx, self.image, self.machine = ctx, image, machine
        self.patches: Sequence[PatchImage] = [] if timestamp is None or checksum is None else \
            [p for p, _ in patches_for(ctx.patches, timestamp, checksum)]
        self.redirect_stubs = redirect_stubs  # stub addresses the module's redirects lead to
        self.out = ExtensionResult()

    # ---------------------------------------------------------------- findings
    def _finding(self, verdict: Verdict, address: int, data: bytes, reason: str, **kw) -> None:
        im, sp = self.image, self.ctx.space
        if "disassembly" not in kw:
            kw["disassembly"] = disassemble(data[:MAX_BYTES + 16], address, self.machine,
                                            stop=address + len(data))
            kw["branch_target"] = branch_target(sp.read_exact, data[:32], address, self.machine)
        if kw.get("branch_target") is not None:
            kw.setdefault("target_owner", self.ctx.amap.describe(kw["branch_target"]))
        extra = {"kind": "extension-page", **kw.pop("extra", {})}
        self.out.findings.append(Finding(
            source=sp.source, pid=sp.pid, process=sp.process, module=im.name, module_path=im.path,
            module_base=im.base, address=address, rva=address - im.base, size=len(data),
            verdict=verdict, reason=reason, expected=kw.pop("expected", b""),
            actual=bytes(data[:MAX_BYTES]), extra=extra, **kw))

    def _stray(self, page_addr: int, page: bytes, lo: int, hi: int, what: str) -> bool:
        runs = _runs(page, lo, hi)
        for a, b in runs[:MAX_RUNS]:
            self._finding(Verdict.UNEXPLAINED, page_addr + a, page[a:b],
                          f"{what} in the hotpatch extension pages past SizeOfImage: not an HPAT "
                          "stub or pointer, not an SCP CFG page, not zero")
        if len(runs) > MAX_RUNS:
            a, b = runs[MAX_RUNS][0], runs[-1][1]
            self._finding(Verdict.UNEXPLAINED, page_addr + a, page[a:b],
                          f"{len(runs) - MAX_RUNS} further non-zero runs in this extension page "
                          "not listed one by one", disassembly="")
        return bool(runs)

    # ---------------------------------------------------------------- page kinds
    def _scp(self, addr: int, page: bytes) -> bool:
        """An SCP CFG page; True when every byte is accounted for (else findings made)."""
        sections = scp_sections(self.ctx)
        if sections is None:
            self._finding(Verdict.UNVERIFIED, addr, page.rstrip(b"\0") or page[:16],
                          "page has the SCP CFG header shape, but no ntdll.dll is readable in "
                          "this space to compare it with", disassembly="")
            self.out.parts.append("SCP CFG page (not verified: no ntdll)")
            return True
        ntdll = next(m for m in self.ctx.amap.images if m.name.lower() == "ntdll.dll")
        # Every hotpatchable image of a process gets the same page: judge it once.
        memo = self.ctx.scp_results.get(page)
        if memo is None:
            best: tuple[str, list[tuple[int, int]]] | None = None
            for name, (_, sec) in sections.items():
                bad = self._scp_diff(page, sec, ntdll, name)
                if best is None or sum(b - a for a, b in bad) < sum(b - a for a, b in best[1]):
                    best = (name, bad)
            assert best is not None
            memo = self.ctx.scp_results[page] = best
        name, bad = memo
        if not bad:
            self.out.parts.append(f"{name} page")
            return True
        for a, b in bad[:MAX_RUNS]:
            self._finding(Verdict.UNEXPLAINED, addr + a, page[a:b],
                          f"SCP CFG page differs from ntdll.dll's {name} section (closest of "
                          f"{len(sections)}) where the kernel writes nothing",
                          expected=sections[name][1][a:b][:MAX_BYTES])
        self.out.parts.append(f"{name} page, {len(bad)} changed runs")
        return False

    def _scp_diff(self, page: bytes, sec: bytes, ntdll: MappedImage,
                  name: str) -> list[tuple[int, int]]:
        """Changed runs of `page` against section `sec`, the kernel's fix-ups allowed."""
        allowed: list[tuple[int, int]] = []
        try:
            offs = struct.unpack_from(f"<{SCP_FIXUP_FUNCTIONS}I", sec, 0)
        except struct.error:
            return [(0, PAGE_SIZE)]
        if name != "SCPCFGNP":  # the NOP variant has no placeholders (ynwarcs)
            for i, off in enumerate(offs):
                at = off + 2
                if at + 8 > len(sec):
                    continue
                value = struct.unpack_from("<Q", page, at)[0]
                # Pointers into ntdll (invalid-call handler, the FP variant's targets) are
                # checked; the CFG bitmap view is a reserved view no image holds.
                into_ntdll = ntdll.contains(value)
                if name == "SCPCFGFP" or i == 4:
                    if into_ntdll:
                        allowed.append((at, at + 8))
                elif not self.ctx.amap.owner(value):
                    allowed.append((at, at + 8))
        ref = bytearray(PAGE_SIZE)
        ref[: len(sec)] = sec
        mine = bytearray(page)
        for a, b in allowed:
            mine[a:b] = ref[a:b]
        diff = [i for i in range(PAGE_SIZE) if mine[i] != ref[i]] if mine != ref else []
        runs: list[list[int]] = []
        for i in diff:
            if runs and i - runs[-1][1] <= MERGE_GAP:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1])
        return [(a, b) for a, b in runs]

    def _stubs(self, addr: int, page: bytes) -> list[int]:
        """Offsets of the HPAT stub entries in `page` (a stub page has at least one). AMD64:
        `FF 25 FA 0F 00 00 CC CC`; i386: `FF 25 <absolute slot address> CC CC` [K]."""
        if self.machine == 0x14C:
            return [off for off in range(0, PAGE_SIZE, HPAT_ENTRY_SIZE)
                    if page[off : off + 2] == b"\xff\x25" and page[off + 6 : off + 8] == b"\xcc\xcc"
                    and struct.unpack_from("<I", page, off + 2)[0]
                    == (addr + off + HPAT_SLOT_DISTANCE) & 0xFFFFFFFF]
        out, at = [], page.find(HPAT_STUB_X64)
        while at >= 0:
            if at % HPAT_ENTRY_SIZE == 0:
                out.append(at)
            at = page.find(HPAT_STUB_X64, at + 1)
        return out

    def _hpat(self, addr: int, stubs: list[int], slots: bytes | None) -> bool:
        clean = True
        ptr_addr = addr + HPAT_SLOT_DISTANCE
        if slots is None:  # pointer page unreadable: the stubs' targets are unknown
            self.out.parts.append(f"HPAT stub page at +{addr - self.image.base:#x} "
                                  f"({len(stubs)} stubs), pointer page not present")
            return True
        used = free = 0
        stub_set = set(stubs)
        wide = self.machine != 0x14C
        for off in range(0, PAGE_SIZE, HPAT_ENTRY_SIZE):
            # i386 slots are 4 bytes, in 8-byte entries like the stubs
            value = struct.unpack_from("<Q" if wide else "<I", slots, off)[0]
            if not wide and any(slots[off + 4 : off + 8]):
                value |= 1 << 63  # high half of an i386 entry must be zero: never a pointer
            if off not in stub_set:
                if value:
                    clean = False
                    self._finding(Verdict.UNEXPLAINED, ptr_addr + off, slots[off : off + 8],
                                  "HPAT pointer slot holds a value but its stub entry is empty",
                                  disassembly="", branch_target=value)
                continue
            if not value:
                free += 1
                continue
            stub = addr + off
            used_by = (" (a redirect in this image leads through it)"
                       if stub in self.redirect_stubs else " (no redirect in this image uses it)")
            patch = next((p for p in self.patches if p.image.contains(value)), None)
            if patch is not None or self.image.contains(value):
                used += 1
                continue
            clean = False
            self._finding(Verdict.UNEXPLAINED, ptr_addr + off, slots[off : off + 8],
                          f"HPAT slot of stub {stub:#x} leads to {self.ctx.amap.describe(value)}, "
                          f"not into a patch image for this module nor back into it{used_by}",
                          disassembly="", branch_target=value,
                          extra={"hpat_stub": f"{stub:#x}"})
        self.out.stubs_used += used
        self.out.stubs_free += free
        self.out.parts.append(f"HPAT at +{addr - self.image.base:#x}: {used} stubs used, "
                              f"{free} free")
        return clean

    # ---------------------------------------------------------------- main pass
    def run(self) -> ExtensionResult:
        ext = self.image.extension
        if ext is None:
            return self.out
        start, end = ext
        read = self.ctx.space.read(start, end - start)
        n = (end - start) // PAGE_SIZE
        self.out.pages = n
        zero = 0
        skip: set[int] = set()
        for i in range(n):
            if i in skip:
                continue
            addr = start + i * PAGE_SIZE
            if i >= len(read.present) or not read.present[i]:
                self.out.absent_pages += 1
                continue
            page = read.data[i * PAGE_SIZE : (i + 1) * PAGE_SIZE]
            if page == ZERO_PAGE:
                zero += 1
                continue
            if _is_scp_shaped(page):
                ok = self._scp(addr, page)
            elif self.machine not in (0x8664, 0x14C):
                # The HPAT stub form of other machines (ARM64) is not public: say so rather
                # than call the kernel's own stubs an attacker's code.
                used = page.rstrip(b"\0")
                self._finding(Verdict.UNVERIFIED, addr, used,
                              f"extension page of a machine {self.machine:#x} image: its HPAT "
                              "stub form is not known, so its bytes are not verified")
                ok = True
            elif stubs := self._stubs(addr, page):
                j = i + 1
                slots = None
                if j < n and j < len(read.present) and read.present[j]:
                    slots = read.data[j * PAGE_SIZE : (j + 1) * PAGE_SIZE]
                    skip.add(j)
                rest = bytearray(page)  # what lies between the stubs must be zero
                for off in stubs:
                    rest[off : off + HPAT_ENTRY_SIZE] = bytes(HPAT_ENTRY_SIZE)
                stray = self._stray(addr, bytes(rest), 0, PAGE_SIZE,
                                    "code or data between HPAT stubs")
                ok = self._hpat(addr, stubs, slots) and not stray
            else:
                ok = not self._stray(addr, page, 0, PAGE_SIZE, "code or data")
            if not ok:
                self.out.unexplained_pages += 1
        if zero:
            self.out.parts.append(f"{zero} zero pages")
        if self.out.absent_pages:
            self.out.parts.append(f"{self.out.absent_pages} pages not present")
        return self.out
