"""A space assembled from files: what `pe diff`, carved-module analysis and the sample tests
verify. Mapped images are laid out already; raw regions (an HPAT, private memory) are readable
but are not images."""
from __future__ import annotations

from typing import Sequence

from hpforensics.space import BytesAddressSpace, MappedImage


class FilesSpace(BytesAddressSpace):
    """A space assembled from files: mapped images plus raw regions (an HPAT, private memory)
    that are readable but are not images. What `pe diff` and the sample tests verify."""

    def __init__(self, images: Sequence[tuple[MappedImage, bytes]],
                 regions: Sequence[tuple[int, bytes]] = (), source: str = "file", **kw) -> None:
        raw = [(MappedImage(base, len(data), "", ""), data) for base, data in regions]
        super().__init__([*images, *raw], source=source, **kw)
        self._image_bases = frozenset(im.base for im, _ in images)

    def images(self) -> Sequence[MappedImage]:
        return [im for im in super().images() if im.base in self._image_bases]
