"""An AddressSpace over a Volatility 3 translation layer: one process, or kernel space.

Reads go page by page through the layer so a page the layer cannot translate (paged out,
pagefile PTE, not in the image) is reported absent instead of raising; the engine turns those
into `unavailable` verdicts. Image enumeration is the caller's (hpforensics.memimage.walk),
which knows the loader lists and the VAD tree.
"""
from __future__ import annotations

import logging
from typing import Sequence

from hpforensics.space import PAGE_SIZE, AddressSpace, MappedImage, ReadResult
from hpforensics.reference.headers import mapped_size_of_image

log = logging.getLogger(__name__)


class VolatilityAddressSpace(AddressSpace):
    def __init__(
        self,
        context,  # volatility3.framework.interfaces.context.ContextInterface
        layer_name: str,
        images: Sequence[MappedImage],
        *,
        source: str,
        pid: int | None,
        process: str,
    ) -> None:
        self._context = context
        self.layer_name = layer_name
        self._layer = context.layers[layer_name]
        self._images = sorted(images, key=lambda i: i.base)
        self.source = source
        self.pid = pid
        self.process = process
        # canonical (0xFFFF8...) addresses in; the layer works on 48-bit addresses
        self._mask = getattr(self._layer, "address_mask", (1 << 64) - 1)
        # pages whose translation succeeded but whose frame lies past the end of the file
        self.beyond_end = 0

    def images(self) -> Sequence[MappedImage]:
        return self._images

    def read(self, address: int, size: int) -> ReadResult:
        # lazy: volatility3 (~0.5 s to import) only for memory images
        from volatility3.framework import exceptions

        out = bytearray(size)
        first = address & ~(PAGE_SIZE - 1)
        n_pages = (address + size - first + PAGE_SIZE - 1) // PAGE_SIZE if size else 0
        present = [False] * n_pages
        for i in range(n_pages):
            lo = max(address, first + i * PAGE_SIZE)
            hi = min(address + size, first + (i + 1) * PAGE_SIZE)
            try:
                data = self._layer.read(lo & self._mask, hi - lo)
            except exceptions.InvalidAddressException as exc:
                if exc.layer_name != self.layer_name:  # raised below us: the file ends early
                    self.beyond_end += 1
                continue
            out[lo - address : hi - address] = data
            present[i] = True
        return ReadResult(address, bytes(out), tuple(present))



def header_size_of_image(layer, base: int) -> int | None:
    """SizeOfImage from the PE header mapped at `base`, or None if it cannot be read."""
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import exceptions


    mask = getattr(layer, "address_mask", (1 << 64) - 1)
    try:
        return mapped_size_of_image(bytes(layer.read(base & mask, 0x400)))
    except exceptions.InvalidAddressException:
        return None
