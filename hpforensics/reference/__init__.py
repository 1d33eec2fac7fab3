"""Reference images: what memory should hold for a mapped module, and why bytes may differ."""
from hpforensics.reference.expected import ExpectedImage, Template, build_expected
from hpforensics.reference.kinds import MaskKind

__all__ = ["ExpectedImage", "MaskKind", "Template", "build_expected"]
