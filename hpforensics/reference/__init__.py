"""Reference images: what memory should hold for a mapped module, and why bytes may differ."""
from hpforensics.reference.disk import DiskReferences
from hpforensics.reference.expected import ExpectedImage, Template, build_expected
from hpforensics.reference.kinds import MaskKind
from hpforensics.reference.provider import ChainReferences, FileReferences, ReferenceProvider

__all__ = ["ChainReferences", "DiskReferences", "ExpectedImage", "FileReferences", "MaskKind",
           "ReferenceProvider", "Template", "build_expected"]
