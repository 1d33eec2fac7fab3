"""PE metadata for hotpatch forensics: PEImage and the structures pefile does not parse.

    from hpforensics.pe import PEImage
    image = PEImage.from_file("ntdll.dll")          # file layout
    image = PEImage.from_bytes(buf, "x", mapped=True)  # memory layout (offsets are RVAs)
"""
from hpforensics.pe.image import LoaderRange, PEImage

__all__ = ["PEImage", "LoaderRange"]
