"""What the hotpatch engine writes besides redirects: patch-table entries and HPAT stubs.

Mixed into `ModuleClassifier`: patch-table writes into a module (forward chunks into the base
image, INVERSE chunks into the patch image) are checked in place, whatever the section, and
inside a patch image the HPAT stubs and pointer slots are accepted as the kernel's.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np

from hpforensics.reference.patches import PatchImage, patches_for
from hpforensics.model import Verdict
from hpforensics.pe.structures import HPAT_SLOT_DISTANCE, HPAT_STUB_X64, ChunkType

if TYPE_CHECKING:
    from hpforensics.classify.verdicts import Context
    from hpforensics.reference.expected import ExpectedImage
    from hpforensics.space import MappedImage

MAX_HPAT_CHUNKS = 1 << 16


class PatchWrites:
    """Needs from its host: ctx, image, exp, actual, own_patch, finding(), _unexplained()."""

    if TYPE_CHECKING:  # what ModuleClassifier, the host, provides
        ctx: Context
        image: MappedImage
        exp: ExpectedImage
        actual: bytes
        own_patch: PatchImage | None

        def finding(self, verdict: Verdict, start: int, end: int, reason: str, **kw) -> None: ...

        def _unexplained(self, s: int, e: int) -> None: ...

    def _data_entry_spans(self) -> list[tuple[int, int, object, PatchImage, bool]]:
        """(start, end, entry, patch, inverse) of patch-table writes into this module."""
        spans = []
        if self.own_patch is None:
            for p, rec in patches_for(self.ctx.patches, self.exp.timestamp, self.exp.checksum):
                for ent in p.data_entries(rec):
                    wr = None if ent.inverse else ent.write_range()
                    if wr:
                        spans.append((wr[0], wr[0] + wr[1], (ent, rec), p, False))
        else:
            p = self.own_patch
            for rec in p.info.bases:
                for ent in p.data_entries(rec):
                    wr = ent.write_range() if ent.inverse else None
                    if wr:
                        spans.append((wr[0], wr[0] + wr[1], (ent, rec), p, True))
        return sorted(spans, key=lambda t: t[0])

    def _check_entry(self, a: int, b: int, ent, p: PatchImage, inverse: bool) -> tuple[bool, str]:
        ent, rec = ent
        if inverse:
            other = self.ctx.by_identity.get((rec.original_timestamp, rec.original_checksum))
            other_rva = ent.base_rva
        else:
            other, other_rva = p.image, ent.patch_rva
        kind = ent.kind
        raw = self.actual[a:b]
        if other is None:
            return True, f"patch table {kind} entry (base image not mapped: value not checked)"
        want = other.base + other_rva
        if ent.chunk_type == ChunkType.ABSOLUTE and len(raw) == 8:
            got = struct.unpack("<Q", raw)[0]
            if got != want:
                return False, f"patch table {kind} slot holds {got:#x}, the entry says {want:#x}"
        elif ent.chunk_type == ChunkType.REL32 and len(raw) == 4:
            got = self.image.base + a + 4 + struct.unpack("<i", raw)[0]
            if got != want:
                return False, f"patch table rel32 leads to {got:#x}, the entry says {want:#x}"
        elif ent.chunk_type == ChunkType.INDIRECT and len(raw) == 8:
            src = self.ctx.space.read_exact(want, 8)
            if src is not None and src != raw:
                return False, (f"patch table indirect slot holds {raw.hex()}, but the source "
                               f"{want:#x} holds {src.hex()}")
        return True, f"written by the hotpatch engine: patch table {kind} entry"

    def _hpat(self, s: int, e: int) -> None:
        """Changes inside a patch image: HPAT stubs and their pointer slots are kernel-written."""
        a = s & ~7
        run_start, run_kind = None, None
        chunks = 0
        while a < e and chunks < MAX_HPAT_CHUNKS:
            chunks += 1
            cur = self.actual[a : a + 8]
            stub = a - HPAT_SLOT_DISTANCE  # where the stub of a pointer slot at `a` would be
            kind = None
            if cur == HPAT_STUB_X64:
                kind = "stub"
            elif stub >= 0 and self.actual[stub : stub + 8] == HPAT_STUB_X64:
                v = struct.unpack("<Q", cur)[0] if len(cur) == 8 else 0
                kind = "pointer" if self.image.contains(v) else None
            elif cur == self.exp.data[a : a + 8]:
                kind = "same"
            if kind != run_kind:
                self._hpat_run(run_start, a, run_kind, s, e)
                run_start, run_kind = a, kind
            a += 8
        self._hpat_run(run_start, min(a, e), run_kind, s, e)
        if a < e:
            self._unexplained(a, e)

    def _hpat_run(self, start, end, kind, s, e) -> None:
        if start is None or kind == "same":
            return
        start, end = max(start, s), min(end, e)
        if start >= end:
            return
        if kind is None:
            self._unexplained(start, end)
        else:
            p = self.own_patch
            assert p is not None
            self.finding(Verdict.HOTPATCH, start, end, f"HPAT {kind}s written by the hotpatch "
                         "engine", patch_image=p.path, patch_base=p.image.base,
                         sequence=p.sequence, kb=p.kb)

    def _entries(self, spans, present: np.ndarray) -> None:
        """Patch-table writes into this module are checked where they are, whatever the
        section (the `__ref_` pointers of a patch image live in writable data)."""
        for a, b, ent, p, inverse in spans:
            if not present[a >> 12] or self.actual[a:b] == self.exp.data[a:b]:
                continue
            ok, why = self._check_entry(a, b, ent, p, inverse)
            if not ok and any(g <= a and b <= h for g, h in self.exp.guessed_ranges):
                continue  # a digest reference does not know what the file held there
            self.finding(Verdict.HOTPATCH if ok else Verdict.UNEXPLAINED, a, b, why,
                         patch_image=p.path, patch_base=p.image.base, sequence=self._seq(p, ent),
                         kb=p.kb)

    @staticmethod
    def _seq(p: PatchImage, ent) -> int:
        rec = ent[1] if isinstance(ent, tuple) else None
        return (rec.sequence_number if rec is not None else 0) or p.sequence
