"""Classify every differing range of one module: loader / hotpatch / unverified / unexplained /
unavailable.

Input: the expected image, what the space holds, and the patch images mapped beside it.
Output: sorted findings (one per redirect or changed run, not per byte) and the module's page
accounting. Loader-only differences are counted, and reported as findings only on request.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from hpforensics.classify.compare import compare
from hpforensics.classify.extension import ExtensionResult, ExtensionVerifier
from hpforensics.classify.owners import AddressMap
from hpforensics.reference.patches import PatchImage
from hpforensics.classify.patchwrites import PatchWrites
from hpforensics.classify.redirect import check_redirect, find_redirects
from hpforensics.disasm import branch_target, disassemble, instruction_start
from hpforensics.classify.slots import check_slots
from hpforensics.model import Finding, ModuleSummary, Verdict
from hpforensics.pe.structures import redirect_form_at
from hpforensics.reference.expected import ExpectedImage
from hpforensics.reference.kinds import MaskKind
from hpforensics.reference.maskset import MaskSet
from hpforensics.space import PAGE_SIZE, AddressSpace, MappedImage

log = logging.getLogger(__name__)

MERGE_GAP = 8  # equal bytes allowed inside one changed run before it is split
MAX_BYTES = 64  # expected/actual bytes kept per finding
RANK = {Verdict.LOADER: 1, Verdict.HOTPATCH: 2, Verdict.UNVERIFIED: 3, Verdict.UNEXPLAINED: 4}
MAX_RANGES = 4096  # changed runs classified one by one per module
NOT_PRESENT = "pages not present in the source"
ZERO_PAGE = "page reads as all zeros (likely not acquired)"
TAIL_FILE = "section tail holds the file's padding (mapped as in the file)"


@dataclass
class Context:
    space: AddressSpace
    amap: AddressMap
    patches: Sequence[PatchImage]
    others_known: bool  # the space lists modules besides the one verified and its patches
    include_loader: bool = False
    by_identity: dict[tuple[int, int], MappedImage] = field(default_factory=dict)
    scp: dict | None = None  # ntdll's SCPCFG* sections in this space, once looked up
    scp_results: dict = field(default_factory=dict)  # SCP page bytes -> (section, bad runs)


def _merge(ranges: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in ranges:
        if out and s - out[-1][1] <= gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(a, b) for a, b in out]


def _subtract(s: int, e: int, holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pieces = [(s, e)]
    for a, b in holes:
        nxt = []
        for x, y in pieces:
            if b <= x or a >= y:
                nxt.append((x, y))
                continue
            if x < a:
                nxt.append((x, a))
            if b < y:
                nxt.append((b, y))
        pieces = nxt
    return pieces


class ModuleClassifier(PatchWrites):
    def __init__(self, ctx: Context, image: MappedImage, expected: ExpectedImage, reference: str,
                 patch: PatchImage | None) -> None:
        self.ctx = ctx
        self.image = image
        self.exp = expected
        self.reference = reference
        self.own_patch = patch  # set when this module is itself a patch image
        self.findings: list[Finding] = []
        self.n_pages = (expected.size + PAGE_SIZE - 1) // PAGE_SIZE
        self.state = np.zeros(self.n_pages, np.int8)
        self.machine = expected.headers.machine
        self.redirect_stubs: set[int] = set()  # HPAT stubs this module's redirects lead to

    # ------------------------------------------------------------------ findings
    def _mark(self, start: int, end: int, verdict: Verdict) -> None:
        rank = RANK.get(verdict)
        if rank is None:  # an unverifiable redirect leaves the page's own state alone
            return
        lo, hi = start >> 12, (max(end, start + 1) - 1) >> 12
        seg = self.state[lo : hi + 1]
        np.maximum(seg, rank, out=seg)

    def finding(self, verdict: Verdict, start: int, end: int, reason: str, **kw) -> None:
        self._mark(start, end, verdict)
        if verdict == Verdict.LOADER and not self.ctx.include_loader:
            return
        im, sp = self.image, self.ctx.space
        actual = self.actual[start:end]
        expected = kw.pop("expected", self.expdata[start : min(end, start + MAX_BYTES)])
        changed = kw.pop("first_changed", start)  # > start when the lead was moved back
        if verdict in (Verdict.UNEXPLAINED, Verdict.HOTPATCH) and self.exp.is_executable(start):
            code = self.actual[start : min(end + 16, len(self.actual))]
            if changed > start and "branch_target" not in kw and \
                    branch_target(sp.read_exact, code, im.base + start, self.machine) is None:
                # Written over the middle of an instruction: the new code starts at the
                # first changed byte, the original one at the boundary before it.
                tail = self.actual[changed : min(end + 16, len(self.actual))]
                target = branch_target(sp.read_exact, tail, im.base + changed, self.machine)
                if target is not None:
                    kw["branch_target"] = target
                    kw.setdefault("disassembly", disassemble(tail, im.base + changed, self.machine,
                                                             stop=im.base + end))
            if changed > start:
                kw["extra"] = {**kw.get("extra", {}), "first_changed": f"{im.base + changed:#x}"}
            kw.setdefault("disassembly", disassemble(code, im.base + start, self.machine,
                                                     stop=im.base + end))
            if expected:  # the original instructions beside the new ones
                kw.setdefault("original_disassembly", disassemble(
                    self.expdata[start : min(end + 16, len(self.expdata))], im.base + start,
                    self.machine, stop=im.base + end))
            if "branch_target" not in kw:
                kw["branch_target"] = branch_target(sp.read_exact, code, im.base + start,
                                                    self.machine)
        target = kw.get("branch_target")
        if target is not None and "target_owner" not in kw:
            kw["target_owner"] = self.ctx.amap.describe(target)
        if target is not None and verdict in (Verdict.UNEXPLAINED, Verdict.UNVERIFIED):
            there = sp.read_exact(target, 16)  # what the lead leads to, when the source has it
            if there:
                kw["extra"] = {**kw.get("extra", {}), "target_disassembly": disassemble(
                    there, target, self.machine, limit=3)}
        self.findings.append(Finding(
            source=sp.source, pid=sp.pid, process=sp.process, module=im.name,
            module_path=im.path or self.exp.path,
            module_base=im.base, address=im.base + start, rva=start, size=end - start,
            verdict=verdict, reason=reason, expected=expected, actual=bytes(actual[:MAX_BYTES]),
            **kw,
        ))

    # ------------------------------------------------------------------ main pass
    def run(self) -> tuple[list[Finding], ModuleSummary]:
        exp, im, sp = self.exp, self.image, self.ctx.space
        read = sp.read(im.base, exp.size)
        self.actual = read.data
        present = np.ones(self.n_pages, bool)
        present[: len(read.present)] = np.asarray(read.present, bool)
        self.tails_seen: list[str] = []
        self.expdata = exp.data  # finding() reads it while _section_tails picks the tails
        self.expdata = self._section_tails(present)
        scope = np.zeros(self.n_pages, bool)
        for a, b in exp.scope_ranges:
            scope[a >> 12 : (b + PAGE_SIZE - 1) >> 12] = True
        # Pages read but not usable as evidence: named by the provider, or all zeros where
        # the reference is not (lost in acquisition far more often than wiped by anyone).
        self.absent_why = {rva >> 12: why for rva, why in exp.absent_pages.items()
                           if rva >> 12 < self.n_pages and present[rva >> 12]}
        present[list(self.absent_why)] = False
        diff = self._compare(present)
        zeros = self._zero_pages(diff.pages, present & scope)
        if zeros:
            self.absent_why.update(dict.fromkeys(zeros, ZERO_PAGE))
            present[zeros] = False
            diff = self._compare(present)
        self._fixed(present)
        self._slots(present)
        spans = self._data_entry_spans()
        self._entries(spans, present)
        holes = [(a, b) for a, b, *_ in spans]
        self.windows: list[tuple[int, int]] = []
        self.done_end = 0  # end of the last unexplained run reported
        self._ranges(_merge(diff.ranges, MERGE_GAP), holes)
        self._unmatched(present, holes)
        self._unavailable(scope & ~present)
        ext = ExtensionVerifier(self.ctx, im, exp.timestamp, exp.checksum, self.machine,
                                self.redirect_stubs).run()
        self.findings.extend(ext.findings)
        return sorted(self.findings, key=lambda f: (f.address, f.size, f.verdict.value)), \
            self._summary(scope, present, ext)

    def _compare(self, present: np.ndarray):
        mask = self.exp.compare_mask
        if not present.all():
            bm = np.frombuffer(mask, np.uint8).copy()
            for p in np.flatnonzero(~present).tolist():
                bm[p * 512 : (p + 1) * 512] = 0xFF
            mask = bm.tobytes()
        return compare(self.expdata, self.actual, mask)

    def _zero_pages(self, changed: list[int], candidates: np.ndarray) -> list[int]:
        """Changed in-scope pages that read as all zeros while the reference page is not."""
        out = []
        act = np.frombuffer(self.actual, np.uint8)
        exp = np.frombuffer(self.expdata, np.uint8)
        for p in changed:
            if p >= self.n_pages or not candidates[p]:
                continue
            a, b = p * PAGE_SIZE, (p + 1) * PAGE_SIZE
            if not act[a:b].any() and exp[a:b].any():
                out.append(p)
        return out

    def _slots(self, present: np.ndarray) -> None:
        self_index = next((i for i, m in enumerate(self.ctx.amap.images)
                           if m.base == self.image.base), -1)
        for r in check_slots(self.exp, self.actual, present, self.ctx.amap, self_index,
                             self.ctx.others_known):
            if r.ok and r.value is not None and not self.ctx.others_known:
                # Nothing to check the pointer against: never "loader", shown by default.
                slot = f"{r.kind} slot" + (f" for {r.dll}" if r.dll else "")
                self.finding(Verdict.UNVERIFIED, r.rva, r.rva + r.size,
                             f"{slot} points to {r.value:#x} ({r.owner}); not verified: the "
                             "space lists no other mapped modules to check it against "
                             "(pe diff: --module)",
                             branch_target=r.value, target_owner=r.owner,
                             extra={"kind": str(r.kind)})
            elif r.ok:
                why = f"{r.kind} written by the loader"
                if r.value is not None:
                    why += f" ({r.owner})"
                self.finding(Verdict.LOADER, r.rva, r.rva + r.size, why,
                             branch_target=r.value, extra={"kind": str(r.kind)})
            else:
                what = (f"IAT hook: slot for {r.dll or 'an import'}"
                        if r.kind in (MaskKind.IAT, MaskKind.DELAY_IAT) else f"{r.kind} slot")
                self.finding(Verdict.UNEXPLAINED, r.rva, r.rva + r.size,
                             f"{what} points to {r.owner}, not into another mapped image",
                             branch_target=r.value, extra={"kind": str(r.kind)})

    def _fixed(self, present: np.ndarray) -> None:
        """Relocated fields and the header's ImageBase: exact values, so nothing to compare
        here; their pages count as loader-written when the base moved the values."""
        if self.image.base == self.exp.headers.image_base:
            return
        for kind in (MaskKind.RELOCATION, MaskKind.HEADER_IMAGE_BASE):
            g = self.exp.masks.group(kind)
            if g is None:
                continue
            pages = np.unique(g.starts >> 12)
            pages = pages[present[pages]]
            np.maximum.at(self.state, pages, RANK[Verdict.LOADER])
            if self.ctx.include_loader:
                for a, b, _ in MaskSet(self.exp.size, [g]).ranges():
                    if not present[a >> 12]:
                        continue
                    same = self.actual[a:b] == self.expdata[a:b]
                    if self._in_scope(a):
                        if same:  # a changed one in scope is an unexplained finding already
                            self.finding(Verdict.LOADER, a, b, f"{kind} written by the loader",
                                         extra={"kind": str(kind)})
                        continue
                    why = (f"{kind} in writable data as the loader writes it; writable data is "
                           "not verified" if same else
                           f"{kind} in writable data no longer holds the loader's value; writable "
                           "data is not verified (the program may change it)")
                    self.finding(Verdict.LOADER, a, b, why,
                                 extra={"kind": str(kind), "scope": "writable, not verified"})

    def _in_scope(self, rva: int) -> bool:
        return any(a <= rva < b for a, b in self.exp.scope_ranges)

    def _section_tails(self, present: np.ndarray) -> bytes:
        """The expected bytes with each section tail as memory shows it: the file's padding or
        zeros (sources disagree on which the loader maps, docs/engine.md). A tail holding
        neither is compared against the closer one, so only the bytes that differ from both
        readings are findings."""
        data = self.exp.data
        chosen: list[tuple[int, bytes, str]] = []
        for rva, pad, n_falign in self.exp.template.tails:
            if rva + len(pad) > len(self.actual) or not present[rva >> 12]:
                continue
            got = np.frombuffer(self.actual, np.uint8, len(pad), rva)
            readings = [("zero-filled", bytes(len(pad))), ("file padding", pad)]
            if 0 < n_falign < len(pad):  # mapped up to VirtualSize rounded to FileAlignment
                readings.insert(1, ("file padding to FileAlignment",
                                    pad[:n_falign] + bytes(len(pad) - n_falign)))
            off = [int((got != np.frombuffer(r, np.uint8)).sum()) for _, r in readings]
            best = off.index(min(off))
            self.tails_seen.append(readings[best][0] if off[best] == 0 else "neither")
            if best:
                chosen.append((rva, readings[best][1], readings[best][0] if off[best] == 0 else ""))
        if not chosen:
            return data
        buf = bytearray(data)
        for rva, pad, seen in chosen:
            buf[rva : rva + len(pad)] = pad
            if seen:
                self.finding(Verdict.LOADER, rva, rva + len(pad),
                             TAIL_FILE if seen == "file padding" else
                             "section tail holds the file's padding up to FileAlignment, "
                             "zeros after",
                             expected=bytes(min(len(pad), MAX_BYTES)),
                             extra={"kind": "section-tail", "section_tail": seen})
        return bytes(buf)

    def _ranges(self, ranges: list[tuple[int, int]], holes: list[tuple[int, int]]) -> None:
        if len(ranges) > MAX_RANGES:
            # A wholly different image (hollowing, wrong reference): list the first ranges,
            # count the pages of the rest, and say how many were left out.
            rest = ranges[MAX_RANGES:]
            ranges = ranges[:MAX_RANGES]
            for a, b in rest:
                self._mark(a, b, Verdict.UNEXPLAINED)
            a, b = rest[0][0], rest[-1][1]
            im, sp = self.image, self.ctx.space
            self.findings.append(Finding(
                source=sp.source, pid=sp.pid, process=sp.process, module=im.name,
                module_path=im.path, module_base=im.base, address=im.base + a, rva=a,
                size=b - a, verdict=Verdict.UNEXPLAINED,
                reason=f"{len(rest)} further changed ranges up to RVA {b:#x} not listed one by one",
                extra={"ranges": str(len(rest))}))
        for s, e in ranges:
            windows = self._redirects(s, e)
            for a, b in _subtract(s, e, windows + holes):
                if self.own_patch is not None:
                    self._hpat(a, b)
                else:
                    self._unexplained(a, b)

    def _redirects(self, s: int, e: int, shaped: bool = False) -> list[tuple[int, int]]:
        """Classify every redirect whose kernel window touches [s, e); their windows. With
        `shaped`, only EB F9/EB F8 preceded by the matching jmp count (a whole page is
        searched, and a short jump back is ordinary code)."""
        exp, act = self.exp, self.actual
        windows: list[tuple[int, int]] = []
        for f_off in find_redirects(act, s, e, 0):
            if shaped and redirect_form_at(act, f_off) is None:
                continue
            r = check_redirect(self.ctx.space, self.ctx.amap, self.image.base, exp.timestamp,
                               exp.checksum, act, self.expdata, f_off, self.ctx.patches)
            ws, we = r.start - self.image.base, r.end - self.image.base
            if any(a < we and ws < b for a, b in windows + self.windows):
                continue
            windows.append((ws, we))
            if r.target is not None:
                self.redirect_stubs.add(r.target)
            kw: dict[str, object] = dict(
                branch_target=r.target, function_rva=f_off,
                extra={"chain_end": f"{r.function_target:#x}"} if r.function_target else {})
            if r.patch is not None:
                kw.update(patch_image=r.patch.path, patch_base=r.patch.image.base,
                          sequence=r.sequence, kb=r.patch.kb)
            if r.hotpatch and r.patch is not None and r.function_target is not None:
                kw["target_owner"] = (f"HPAT stub -> {r.patch.image.name}"
                                      f"+{r.function_target - r.patch.image.base:#x}")
            verdict = (Verdict.HOTPATCH if r.hotpatch else
                       Verdict.UNAVAILABLE if r.unavailable else Verdict.UNEXPLAINED)
            self.finding(verdict, ws, we, r.reason, **kw)
        self.windows += windows
        return windows

    def _unmatched(self, present: np.ndarray, holes: list[tuple[int, int]]) -> None:
        """Pages a digest reference knows no version of: redirects in them are classified as
        usual; the rest of the page is one unexplained finding (which bytes changed is not
        known without the reference bytes)."""
        for rva, why in sorted(self.exp.unmatched_pages.items()):
            if rva >= self.exp.size or not present[rva >> 12]:
                continue
            s, e = rva, min(rva + PAGE_SIZE, self.exp.size)
            self._redirects(s, e, shaped=True)
            for a, b in _subtract(s, e, self.windows + holes):
                self.finding(Verdict.UNEXPLAINED, a, b, why, expected=b"", disassembly="",
                             branch_target=None, function_rva=self.exp.function_at(a))
            self._mark(s, e, Verdict.UNEXPLAINED)
        # Pages the reference cannot judge: their redirects still are, the page counts
        # unavailable with the reference's reason.
        for rva, why in sorted(self.exp.unverifiable_pages.items()):
            if rva >= self.exp.size or not present[rva >> 12]:
                continue
            self._redirects(rva, min(rva + PAGE_SIZE, self.exp.size), shaped=True)
            present[rva >> 12] = False
            self.absent_why[rva >> 12] = why

    def _unexplained(self, s: int, e: int) -> None:
        if self.machine == 0xAA64 and self.exp.is_executable(s):
            s, e = s & ~3, (e + 3) & ~3  # whole instructions: ARM64 code is 4-byte words
        first = s
        if self.machine in (0x8664, 0x14C) and self.exp.is_executable(s):
            # Start at the original instruction holding the first changed byte, so a hook that
            # keeps the old first byte (48 B8 imm64 over 48 8B C4) still decodes as written.
            # never back into the run reported before (runs come in address order)
            lo = max((b for a, b in self.windows if b <= s), default=self.done_end)
            lo = max(lo, self.done_end)
            start = instruction_start(self.expdata, s, self.machine, self.exp.function_at(s))
            if lo <= start < s and self.exp.is_executable(start):
                s = start
        self.done_end = e
        kinds = self.exp.masks.kinds_in(s, e)
        if self.exp.is_executable(s):
            why = "code differs from the file and no loader or hotpatch rule explains it"
            if MaskKind.RELOCATION in kinds:
                why += "; it overwrites a relocated field"
        elif MaskKind.RELOCATION in kinds:
            s, e = self.exp.masks.span(MaskKind.RELOCATION, s, e)
            why = "relocated field holds a value the loader would not write for this base"
        else:
            why = "read-only data differs from the file and no loader or hotpatch rule explains it"
        fn = self.exp.function_at(s)
        name = self.exp.template.exports.get(fn, "") if fn is not None else ""
        if name:
            why += f" (in {name})"
        self.finding(Verdict.UNEXPLAINED, s, e, why, function_rva=fn, first_changed=first)

    def _unavailable(self, absent: np.ndarray) -> None:
        idx = np.flatnonzero(absent)
        if not len(idx):
            return
        why = [self.absent_why.get(p, NOT_PRESENT) for p in idx.tolist()]
        # one finding per run of consecutive pages with the same reason
        brk = np.flatnonzero((np.diff(idx) > 1) | (np.asarray(why[1:]) != np.asarray(why[:-1])))
        for a, b in zip(idx[np.r_[0, brk + 1]].tolist(), idx[np.r_[brk, len(idx) - 1]].tolist()):
            start, end = a * PAGE_SIZE, min((b + 1) * PAGE_SIZE, self.exp.size)
            im, sp = self.image, self.ctx.space
            self.findings.append(Finding(
                source=sp.source, pid=sp.pid, process=sp.process, module=im.name,
                module_path=im.path, module_base=im.base, address=im.base + start, rva=start,
                size=end - start,
                verdict=Verdict.UNAVAILABLE, reason=self.absent_why.get(a, NOT_PRESENT)))

    def _summary(self, scope: np.ndarray, present: np.ndarray,
                 ext: ExtensionResult) -> ModuleSummary:
        sp, im = self.ctx.space, self.image
        live = scope & present
        st = self.state
        return ModuleSummary(
            source=sp.source, pid=sp.pid, process=sp.process, module=im.name, module_path=im.path,
            module_base=im.base, size=self.exp.size, reference=self.reference,
            pages_total=int(scope.sum()),
            pages_verified=int((live & (st == 0)).sum()),
            pages_loader=int((live & (st == 1)).sum()),
            pages_hotpatched=int((live & (st == 2)).sum()),
            pages_unverified=int((live & (st == 3)).sum()),
            pages_unexplained=int((live & (st == 4)).sum()),
            pages_unavailable=int((scope & ~present).sum()),
            extension_pages=ext.pages, extension_unexplained=ext.unexplained_pages,
            hpat_stubs_used=ext.stubs_used, hpat_stubs_free=ext.stubs_free,
            extension_content=ext.content,
            section_tails=_tails_note(self.tails_seen),
        )


def _tails_note(seen: list[str]) -> str:
    kinds = sorted(set(seen))
    return "" if not kinds else kinds[0] if len(kinds) == 1 else "mixed (" + ", ".join(kinds) + ")"
