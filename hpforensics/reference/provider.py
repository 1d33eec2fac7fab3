"""Where expected images come from: the contract every reference provider implements.

A provider maps a module seen in an address space to the reference it should be compared
with. `DiskReferences` finds on-disk files; a KB-manifest or page-hash-store provider plugs in
the same way.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from hpforensics.reference.expected import ExpectedImage
from hpforensics.sources.source import AddressSpace, MappedImage


@runtime_checkable
class ReferenceProvider(Protocol):
    def expected_for(self, image: MappedImage, space: AddressSpace) -> ExpectedImage | None:
        """The expected image of `image` loaded at `image.base`, or None when unknown."""

    def label(self, expected: ExpectedImage) -> str:
        """How a summary names the reference: "disk:<path>", "manifest:<KB>", "store:<db>"."""


class FileReferences:
    """Fixed files for fixed bases: what `pe diff` and tests use."""

    def __init__(self, files: dict[int, str]) -> None:
        self.files = dict(files)  # base -> path

    def expected_for(self, image: MappedImage, space: AddressSpace) -> ExpectedImage | None:
        from hpforensics.reference.expected import build_expected

        path = self.files.get(image.base)
        return build_expected(path, image.base) if path else None

    def label(self, expected: ExpectedImage) -> str:
        return f"disk:{expected.path}"
