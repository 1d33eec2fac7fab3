"""Who owns an address: which mapped image, its hotpatch extension pages, or "unmapped".
Vectorised for slot checks."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hpforensics.space import AddressSpace, MappedImage


class AddressMap:
    def __init__(self, images: Sequence[MappedImage], space: AddressSpace | None = None) -> None:
        self.images = sorted(images, key=lambda m: m.base)
        self.space = space
        self._bases = np.asarray([m.base for m in self.images], np.uint64)
        self._ends = np.asarray([m.end for m in self.images], np.uint64)
        # Extension pages (past SizeOfImage) belong to their image's mapping but not to the
        # image: kept apart so "inside ntdll.dll" never covers them by accident.
        ext = [m.extension for m in self.images]
        self._ext_starts = np.asarray([e[0] if e else 0 for e in ext], np.uint64)
        self._ext_ends = np.asarray([e[1] if e else 0 for e in ext], np.uint64)

    def owner(self, address: int | None) -> MappedImage | None:
        if address is None or not len(self.images) or not 0 <= address < 1 << 64:
            return None
        i = int(np.searchsorted(self._bases, np.uint64(address), side="right")) - 1
        if i >= 0 and address < self.images[i].end:
            return self.images[i]
        return None

    def extension_owner(self, address: int | None) -> MappedImage | None:
        """The image whose hotpatch extension pages hold `address`."""
        if address is None or not len(self.images) or not 0 <= address < 1 << 64:
            return None
        i = int(np.searchsorted(self._bases, np.uint64(address), side="right")) - 1
        if i >= 0 and self._ext_starts[i] <= address < self._ext_ends[i]:
            return self.images[i]
        return None

    def describe(self, address: int | None) -> str:
        """"ntdll.dll+0x1234"; "ntdll.dll+0x1f0040 (extension page)"; "private memory"
        (readable, no image); or "unmapped"."""
        m = self.owner(address)
        if m is None:
            x = self.extension_owner(address)
            if x is not None:
                assert address is not None
                return f"{x.name}+{address - x.base:#x} (hotpatch extension page)"
            if address is not None and self.space is not None and 0 <= address < 1 << 64:
                if self.space.read(address & ~0xFFF, 1).complete:
                    return "private memory"
            return "unmapped"
        assert address is not None
        return f"{m.name}+{address - m.base:#x}"

    def owner_index(self, values: np.ndarray, extensions: bool = False) -> np.ndarray:
        """Index into `images` of the image holding each value, -1 where none does. With
        `extensions`, a value in an image's extension pages counts as that image's."""
        v = np.asarray(values, np.uint64)
        if not len(self.images):
            return np.full(len(v), -1, np.int64)
        i = np.searchsorted(self._bases, v, side="right").astype(np.int64) - 1
        j = np.maximum(i, 0)
        ok = (i >= 0) & (v < self._ends[j])
        if extensions:
            ok |= (i >= 0) & (self._ext_starts[j] <= v) & (v < self._ext_ends[j])
        return np.where(ok, i, -1)
