"""Verdicts for changed bytes: loader / hotpatch / unexplained / unavailable."""
from hpforensics.reference.patches import PatchImage
from hpforensics.classify.verdicts import Context, ModuleClassifier

__all__ = ["Context", "ModuleClassifier", "PatchImage"]
