"""Normalised page hashes of a PE image: lay it out as the loader would, zero every byte the
loader writes (base relocations, IAT, dynamic-relocation sites), hash each executable page.

The result does not depend on the base the image was loaded at, so a page read from memory and
a page of the file on disk hash alike when, and only when, their code is the same. The same
function serves the file importers (file layout) and memory dumps (`mapped=True`).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import struct
from dataclasses import dataclass, field
from typing import Union

import pefile

from hpforensics.errors import InputError

log = logging.getLogger(__name__)

PAGE_SIZE = 0x1000
DEFAULT_ALGO = "sha256"  # unambiguous across implementations; digests are 32 bytes
_EXEC = 0x20000000  # IMAGE_SCN_MEM_EXECUTE
_CODE = 0x00000020  # IMAGE_SCN_CNT_CODE
# Bytes a base relocation of each type rewrites (winnt.h IMAGE_REL_BASED_*).
_RELOC_SIZE = {1: 2, 2: 2, 3: 4, 4: 4, 5: 4, 7: 4, 9: 4, 10: 8}
# Bytes rewritten at a dynamic-relocation site, by DVRT symbol (see docs/kb-manifest.md).
_DVRT_SITE = {3: 12, 4: 5, 5: 5, 7: 4, 8: 4}
_MAX_IMAGE = 1 << 30

Mask = Union[bytes, list[tuple[int, int]]]


@dataclass
class NormalizedImage:
    """Identity, loader mask and normalised executable-page digests of one image."""

    name: str
    timestamp: int
    size_of_image: int
    checksum: int
    machine: int
    image_base: int
    algo: str
    mask: Mask  # loader-written bytes: bitmap (bit i = byte i) or merged (start, end) ranges
    pages: dict[int, bytes] = field(default_factory=dict)  # page RVA -> digest (executable pages)
    zero_pages: set[int] = field(default_factory=set)  # pages all zero after masking
    hotpatch: dict | None = None  # {"sequence_number", "bases": [...]} when the engine read it
    pe: pefile.PE | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.name.lower(), self.timestamp, self.size_of_image)


def parse_pe(data: bytes, path: str, mapped: bool = False) -> pefile.PE:
    """pefile over `data`, only the directories we need. For a memory (mapped) layout the
    section table is rewritten in a private copy so pefile's RVA->offset is the identity."""
    try:
        pe = pefile.PE(data=data, fast_load=True)
        if mapped:
            for s in pe.sections:
                s.PointerToRawData = s.VirtualAddress
                span = max(s.Misc_VirtualSize, s.SizeOfRawData)
                s.SizeOfRawData = max(0, min(span, len(data) - s.VirtualAddress))
            pe = pefile.PE(data=bytes(pe.write()), fast_load=True)
    except pefile.PEFormatError as exc:
        raise InputError(path, f"not a PE image: {exc.value}", 0) from None
    except (ValueError, IndexError, struct.error) as exc:  # pefile leaks these on garbage
        raise InputError(path, f"corrupt PE image: {exc}", 0) from None
    if not 0 < pe.OPTIONAL_HEADER.SizeOfImage <= _MAX_IMAGE:
        raise InputError(path, f"implausible SizeOfImage {pe.OPTIONAL_HEADER.SizeOfImage:#x}", 0)
    return pe


def normalize_headers(data: bytes, path: str) -> tuple[int, int] | None:
    """(TimeDateStamp, SizeOfImage) from the headers of a file or memory copy, or None."""
    try:
        pe = pefile.PE(data=bytes(data[:0x1000]), fast_load=True)
    except (pefile.PEFormatError, ValueError, IndexError, struct.error):
        return None
    return pe.FILE_HEADER.TimeDateStamp, pe.OPTIONAL_HEADER.SizeOfImage


def loader_mask(pe: pefile.PE) -> list[tuple[int, int]]:
    """Merged RVA ranges the loader may write: base relocations, the IAT, dynamic relocations.
    Read from the image itself, so a file and a memory copy of it get the same mask. Raises
    InputError when a directory is malformed."""
    # Parsed only here: pefile's relocation walk is the slowest step of an import, and it is
    # not needed when the engine supplies the mask.
    pe.parse_data_directories(
        directories=[
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_BASERELOC"],
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG"],
        ]
    )
    ranges: list[tuple[int, int]] = []
    for block in getattr(pe, "DIRECTORY_ENTRY_BASERELOC", []):
        for e in block.entries:
            size = _RELOC_SIZE.get(e.type)
            if size:
                ranges.append((e.rva, e.rva + size))
    iat = pe.OPTIONAL_HEADER.DATA_DIRECTORY[12]
    if iat.VirtualAddress and iat.Size:
        ranges.append((iat.VirtualAddress, iat.VirtualAddress + iat.Size))
    lc = getattr(pe, "DIRECTORY_ENTRY_LOAD_CONFIG", None)
    for dyn in getattr(lc, "dynamic_relocations", None) or []:
        site = _DVRT_SITE.get(dyn.symbol, 8)  # unknown symbol: mask a pointer's worth
        blocks = list(getattr(dyn, "relocations", None) or [])
        for fr in getattr(dyn, "func_relocs", None) or []:
            blocks += list(getattr(fr, "relocations", None) or [])
        for block in blocks:
            for e in getattr(block, "entries", []):
                rva = getattr(e, "rva", None)
                if rva is not None:
                    ranges.append((rva, rva + site))
    return merge_ranges(ranges)


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def memory_layout(pe: pefile.PE, data: bytes, mapped: bool) -> bytes:
    """The image as mapped: SizeOfImage bytes, headers and sections at their RVAs."""
    size = pe.OPTIONAL_HEADER.SizeOfImage
    if mapped:
        image = bytes(data[:size])
    else:
        image = pe.get_memory_mapped_image()
    if len(image) < size:
        image = image + bytes(size - len(image))
    return image[:size]


def executable_pages(pe: pefile.PE, page_size: int = PAGE_SIZE) -> list[int]:
    size = pe.OPTIONAL_HEADER.SizeOfImage
    pages: set[int] = set()
    for s in pe.sections:
        if not s.Characteristics & (_EXEC | _CODE):
            continue
        span = max(s.Misc_VirtualSize, s.SizeOfRawData)
        start = s.VirtualAddress - s.VirtualAddress % page_size
        for rva in range(start, min(s.VirtualAddress + span, size), page_size):
            pages.add(rva)
    return sorted(pages)


def hash_image_pages(
    image: bytes, rvas: list[int], mask: Mask, algo: str = DEFAULT_ALGO
) -> tuple[dict[int, bytes], set[int]]:
    """Digest of each page in `rvas` with masked bytes counted as zero, via the C core."""
    try:
        # lazy: only this path uses it (kept off this module's import cost)
        from hpforensics.pagehash import FLAG_ZERO, hash_pages
    except ImportError:  # C core not built: same result, slower
        return _hash_pages_py(image, rvas, mask, algo)
    if isinstance(mask, (bytes, bytearray)) and len(mask) * 8 < len(image):
        # the C core wants a bitmap as long as the buffer
        mask = bytes(mask) + bytes((len(image) + 7) // 8 - len(mask))
    hashed = hash_pages(image, algo=algo, page_size=PAGE_SIZE, mask=mask or None)
    digests: dict[int, bytes] = {}
    zero: set[int] = set()
    for rva in rvas:
        i = rva // PAGE_SIZE
        if i < len(hashed):
            digests[rva] = bytes(hashed.digest(i))
            if hashed.flags[i] & FLAG_ZERO:
                zero.add(rva)
    return digests, zero


def _hash_pages_py(
    image: bytes, rvas: list[int], mask: Mask, algo: str
) -> tuple[dict[int, bytes], set[int]]:
    if algo != "sha256":
        raise ValueError(f"algorithm {algo!r} needs the C core (hpforensics.pagehash)")
    buf = bytearray(image)
    if isinstance(mask, (bytes, bytearray)):
        # lazy: numpy is heavy to import and only this path uses it
        import numpy as np

        bits = np.unpackbits(np.frombuffer(mask, np.uint8), bitorder="little")[: len(buf)]
        arr = np.frombuffer(buf, np.uint8).copy()
        arr[: len(bits)][bits.astype(bool)] = 0
        buf = bytearray(arr.tobytes())
        mask = []
    for start, end in mask:
        buf[start:end] = bytes(max(0, min(end, len(buf)) - start))
    digests, zero = {}, set()
    empty = bytes(PAGE_SIZE)
    for rva in rvas:
        page = bytes(buf[rva:rva + PAGE_SIZE]).ljust(PAGE_SIZE, b"\0")
        digests[rva] = hashlib.sha256(page).digest()
        if page == empty:
            zero.add(rva)
    return digests, zero


@functools.lru_cache(maxsize=4)
def zero_digest(algo: str = DEFAULT_ALGO) -> bytes:
    """Digest of an all-zero page: it matches every image, so lookups ignore it."""
    digests, _ = hash_image_pages(bytes(PAGE_SIZE), [0], [], algo)
    return digests[0]


def engine_template(file_like: bytes, name: str):
    """The verifier's template of a file-layout image (hpforensics.reference): layout, loader
    mask, executable ranges, hotpatch info. None when that helper is not installed."""
    try:
        # lazy: only this path uses it (kept off this module's import cost)
        from hpforensics.reference.expected import build_template
    except ImportError:
        return None
    try:
        return build_template(bytes(file_like), name, name)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - its failure only costs us its finer mask
        log.debug("%s: engine template unavailable (%s); using pefile", name, exc)
        return None


def _pages_in(ranges: list[tuple[int, int]], size: int) -> list[int]:
    pages: set[int] = set()
    for start, end in ranges:
        pages.update(range(start - start % PAGE_SIZE, min(end, size), PAGE_SIZE))
    return sorted(pages)


def hotpatch_json(info) -> dict | None:
    """A patch image's hotpatch records as stored in manifests and the store (None if not one)."""
    if info is None:
        return None
    return {
        "sequence_number": info.sequence_number,
        "bases": [
            {"timestamp": b.original_timestamp, "checksum": b.original_checksum,
             "sequence_number": b.sequence_number, "flags": b.flags, "functions": len(b.functions)}
            for b in info.bases
        ],
    }


def normalize(
    data: bytes,
    name: str,
    *,
    path: str | None = None,
    mapped: bool = False,
    algo: str = DEFAULT_ALGO,
    mask: Mask | None = None,
) -> NormalizedImage:
    """Parse, lay out, mask and hash one image. Raises InputError on a malformed image.

    The engine's template (hpforensics.reference) gives the layout and the mask when that
    helper is installed, so the store and the verifier normalise alike; a memory copy goes to
    it as the file-like view parse_pe makes of it (raw data at the RVAs). Without the engine,
    pefile lays the image out and the mask is read from its relocation, IAT and
    dynamic-relocation tables. A mask given by the caller (the stored mask of a known
    version) wins over both."""
    where = path or name
    pe = parse_pe(data, where, mapped) if mapped else None
    template = engine_template(pe.__data__ if pe is not None else data, name)
    if template is not None:
        h = template.headers
        if mapped:
            image = bytes(data[: h.size_of_image]).ljust(h.size_of_image, b"\0")
        else:
            image = template.layout
        if mask is None:
            mask = template.mask_bitmap
        rvas = _pages_in(template.exec_ranges, h.size_of_image)
        digests, zero = hash_image_pages(image, rvas, mask, algo)
        return NormalizedImage(
            name, h.timestamp, h.size_of_image, h.checksum, h.machine, h.image_base,
            algo, mask, digests, zero, hotpatch_json(template.hotpatch), pe,
        )
    pe = pe or parse_pe(data, where, mapped)
    try:
        if mask is None:
            mask = loader_mask(pe)
        image = memory_layout(pe, data, mapped)
        rvas = executable_pages(pe)
    except (ValueError, IndexError, AttributeError, struct.error, pefile.PEFormatError) as exc:
        raise InputError(where, f"corrupt PE image: {exc}") from None
    digests, zero = hash_image_pages(image, rvas, mask, algo)
    return NormalizedImage(
        name=name,
        timestamp=pe.FILE_HEADER.TimeDateStamp,
        size_of_image=pe.OPTIONAL_HEADER.SizeOfImage,
        checksum=pe.OPTIONAL_HEADER.CheckSum,
        machine=pe.FILE_HEADER.Machine,
        image_base=pe.OPTIONAL_HEADER.ImageBase,
        algo=algo,
        mask=mask,
        pages=digests,
        zero_pages=zero,
        pe=pe,
    )

