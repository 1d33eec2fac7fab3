"""Who owns an address: which mapped image, or "unmapped". Vectorised for slot checks."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hpforensics.sources.source import AddressSpace, MappedImage


class AddressMap:
    def __init__(self, images: Sequence[MappedImage], space: AddressSpace | None = None) -> None:
        self.images = sorted(images, key=lambda m: m.base)
        self.space = space
        self._bases = np.asarray([m.base for m in self.images], np.uint64)
        self._ends = np.asarray([m.end for m in self.images], np.uint64)

    def owner(self, address: int | None) -> MappedImage | None:
        if address is None or not len(self.images) or not 0 <= address < 1 << 64:
            return None
        i = int(np.searchsorted(self._bases, np.uint64(address), side="right")) - 1
        if i >= 0 and address < self.images[i].end:
            return self.images[i]
        return None

    def describe(self, address: int | None) -> str:
        """"ntdll.dll+0x1234"; "private memory" (readable, no image); or "unmapped"."""
        m = self.owner(address)
        if m is None:
            if address is not None and self.space is not None and 0 <= address < 1 << 64:
                if self.space.read(address & ~0xFFF, 1).complete:
                    return "private memory"
            return "unmapped"
        assert address is not None
        return f"{m.name}+{address - m.base:#x}"

    def owner_index(self, values: np.ndarray) -> np.ndarray:
        """Index into `images` of the image holding each value, -1 where none does."""
        v = np.asarray(values, np.uint64)
        if not len(self.images):
            return np.full(len(v), -1, np.int64)
        i = np.searchsorted(self._bases, v, side="right").astype(np.int64) - 1
        ok = (i >= 0) & (v < self._ends[np.maximum(i, 0)])
        return np.where(ok, i, -1)
