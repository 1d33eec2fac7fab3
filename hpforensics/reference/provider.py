"""Where expected images come from: the contract every reference provider implements.

A provider maps a module seen in an address space to the reference it should be compared
with. `DiskReferences` finds on-disk files; a KB-manifest or page-hash-store provider plugs in
the same way.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

from hpforensics.reference.expected import ExpectedImage
from hpforensics.space import AddressSpace, MappedImage
from hpforensics.reference.expected import build_expected
from hpforensics.errors import InputError


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

        path = self.files.get(image.base)
        return build_expected(path, image.base) if path else None

    def label(self, expected: ExpectedImage) -> str:
        return f"disk:{expected.path}"


class ChainReferences:
    """Providers asked in order; the first expected image wins. `--reference` folders come
    first (exact bytes), then the page-hash store and KB manifests (digests). A provider that
    fails on a module (a corrupt reference file) passes it to the next, with a warning."""

    def __init__(self, providers) -> None:
        self.providers = [p for p in providers if p is not None]

    def expected_for(self, image: MappedImage, space: AddressSpace) -> ExpectedImage | None:

        failed: InputError | None = None
        for p in self.providers:
            try:
                e = p.expected_for(image, space)
            except InputError as exc:
                failed = failed or exc
                continue
            if e is not None:
                if failed is not None:
                    e = dataclasses.replace(e, warnings=[*e.warnings, f"{failed}; verified "
                                                         f"against {self.label(e)} instead"])
                return e
        if failed is not None:
            raise failed
        return None

    def label(self, expected: ExpectedImage) -> str:
        return expected.reference or f"disk:{expected.path}"
