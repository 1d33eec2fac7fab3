"""Corrupt-input corpus: damaged copies of the project's own samples (and, for EVTX, of a real
log from the shared data), written to a folder. Run as a script to get the corpus on disk:

    python tests/corrupt/corrupt_corpus.py OUTDIR

Every generator is deterministic (fixed offsets, no randomness without a fixed seed), takes the
clean file's bytes and returns the damaged bytes, and says in its docstring what is wrong.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
PE_BASE = SAMPLES / "pe" / "hpbase.dll"  # load config + DVRT in .reloc, 8 base relocations
PE_PATCH = SAMPLES / "pe" / "hpbase_hp1.dll"  # hotpatch image: HotPatchTableOffset set
MEM_IMAGE = SAMPLES / "win11-24h2-hotpatch.raw"

EVTX_HEADER, EVTX_CHUNK = 0x1000, 0x10000


# -- PE ------------------------------------------------------------------------------------
def _pe(data: bytes) -> dict[str, int]:
    """File offsets of the header fields the generators damage (read, never hard-coded)."""
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    opt = lfanew + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    dirs = opt + (112 if magic == 0x20B else 96)
    nsec, opt_size = struct.unpack_from("<H12xH", data, lfanew + 6)
    sect = opt + opt_size
    sections = []
    for i in range(nsec):
        va, raw_size, raw_off = struct.unpack_from("<I I I", data, sect + 40 * i + 12)
        sections.append((va, raw_size, raw_off, sect + 40 * i))
    return {"lfanew": lfanew, "opt": opt, "dirs": dirs, "nsec_field": lfanew + 6,
            "sections": sections, "size_of_image": opt + 56}


def rva_to_off(data: bytes, rva: int) -> int:
    for va, raw_size, raw_off, _ in _pe(data)["sections"]:
        if va <= rva < va + raw_size:
            return raw_off + rva - va
    return rva


def _put(data: bytes, off: int, fmt: str, *values: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, off, *values)
    return bytes(buf)


def _dir(data: bytes, index: int) -> tuple[int, int, int]:
    at = _pe(data)["dirs"] + 8 * index
    rva, size = struct.unpack_from("<II", data, at)
    return at, rva, size


def _lc_field(data: bytes, name: str) -> int:
    """File offset of a load-config field, by the PE parser's own declaration."""
    from hpforensics.pe.image import PEImage

    img = PEImage.from_bytes(data, "clean")
    return rva_to_off(data, img.load_config.field_rva(name))


def pe_empty(data: bytes) -> bytes:
    """Zero-length file."""
    return b""


def pe_headers_cut(data: bytes) -> bytes:
    """Cut inside the section table."""
    return data[: _pe(data)["sections"][1][3] + 8]


def pe_lfanew_outside(data: bytes) -> bytes:
    """e_lfanew points 4 GiB away."""
    return _put(data, 0x3C, "<I", 0xFFFFFF00)


def pe_nsections_huge(data: bytes) -> bytes:
    """NumberOfSections = 0xFFFF: the table would run far past the file."""
    return _put(data, _pe(data)["nsec_field"], "<H", 0xFFFF)


def pe_section_outside(data: bytes) -> bytes:
    """.text raw data claimed at 1 MiB, past the end of the file."""
    return _put(data, _pe(data)["sections"][0][3] + 20, "<I", 0x100000)


def pe_size_of_image_huge(data: bytes) -> bytes:
    """SizeOfImage = 0xFFFFF000 (a 4 GiB image from a 3.5 KiB file)."""
    return _put(data, _pe(data)["size_of_image"], "<I", 0xFFFFF000)


def pe_loadconfig_outside(data: bytes) -> bytes:
    """Load-config directory RVA outside every section and the image."""
    at, _, size = _dir(data, 10)
    return _put(data, at, "<I", 0x7FFF0000)


def pe_loadconfig_size_huge(data: bytes) -> bytes:
    """Load config's own Size field = 0xFFFFFFF0."""
    _, rva, _ = _dir(data, 10)
    return _put(data, rva_to_off(data, rva), "<I", 0xFFFFFFF0)


def pe_dynreloc_outside(data: bytes) -> bytes:
    """DynamicValueRelocTableOffset points past the end of its section."""
    return _put(data, _lc_field(data, "DynamicValueRelocTableOffset"), "<I", 0x7FFFFFF0)


def pe_dynreloc_size_huge(data: bytes) -> bytes:
    """The dynamic-relocation table header claims 0xFFFFFFF0 bytes."""
    from hpforensics.pe.image import PEImage

    img = PEImage.from_bytes(data, "clean")
    lc = img.load_config
    sec = img.sections[lc.get("DynamicValueRelocTableSection") - 1]
    table = sec.raw_offset + lc.get("DynamicValueRelocTableOffset")
    return _put(data, table + 4, "<I", 0xFFFFFFF0)


def pe_reloc_outside(data: bytes) -> bytes:
    """Base-relocation directory RVA outside the image."""
    at, _, _ = _dir(data, 5)
    return _put(data, at, "<I", 0x7FFF0000)


def pe_reloc_block_zero(data: bytes) -> bytes:
    """First relocation block has SizeOfBlock = 0: a naive walker never advances."""
    _, rva, _ = _dir(data, 5)
    return _put(data, rva_to_off(data, rva) + 4, "<I", 0)


def pe_reloc_block_huge(data: bytes) -> bytes:
    """First relocation block claims 0xFFFFFFF8 bytes."""
    _, rva, _ = _dir(data, 5)
    return _put(data, rva_to_off(data, rva) + 4, "<I", 0xFFFFFFF8)


def pe_hotpatch_outside(data: bytes) -> bytes:
    """HotPatchTableOffset (hotpatch image) points 2 GiB away."""
    return _put(data, _lc_field(data, "HotPatchTableOffset"), "<I", 0x7FFFFFF0)


def pe_hotpatch_selfref(data: bytes) -> bytes:
    """Hotpatch info whose base-image list is the info itself, with 0xFFFFFFFF bases."""
    from hpforensics.pe.image import PEImage

    img = PEImage.from_bytes(data, "clean")
    hp_rva = img.load_config.get("HotPatchTableOffset")
    off = rva_to_off(data, hp_rva)
    # IMAGE_HOT_PATCH_INFO: Version, Size, SequenceNumber, BaseImageList, BaseImageCount, ...
    return _put(data, off + 12, "<II", hp_rva, 0xFFFFFFFF)


def pe_million_relocs(data: bytes) -> bytes:
    """1,000,000 base relocations (2,000 blocks of 500 distinct DIR64 sites) in a 2 MB .reloc
    section whose zero-filled tail they patch: a table as large as the format allows in practice."""
    info = _pe(data)
    va, raw_size, raw_off, hdr = info["sections"][-1]
    pages, per_page = 2000, 500
    target = (va + (4 << 20)) & ~0xFFF  # pages past the table itself, inside the section
    block = struct.pack("<" + "H" * per_page, *(0xA000 | (8 * i) for i in range(per_page)))
    body = b"".join(struct.pack("<II", target + 0x1000 * p, 8 + len(block)) + block
                    for p in range(pages))
    size = (len(body) + 0x1FF) & ~0x1FF
    out = bytearray(data[:raw_off]) + body + bytes(size - len(body))
    vsize = target + pages * 0x1000 - va
    struct.pack_into("<IIII", out, hdr + 8, vsize, va, size, raw_off)  # VirtualSize, VA, raw
    at, _, _ = _dir(data, 5)
    struct.pack_into("<II", out, at, va, len(body))
    struct.pack_into("<I", out, info["size_of_image"], va + vsize)
    # the dynamic-relocation table lived in the replaced .reloc section: drop the pointer to it
    struct.pack_into("<I", out, _lc_field(data, "DynamicValueRelocTableOffset"), 0)
    struct.pack_into("<H", out, _lc_field(data, "DynamicValueRelocTableSection"), 0)
    return bytes(out)


PE_CASES: dict[str, tuple[Path, Callable[[bytes], bytes]]] = {
    f.__name__: (PE_PATCH if "hotpatch" in f.__name__ else PE_BASE, f)
    for f in (pe_empty, pe_headers_cut, pe_lfanew_outside, pe_nsections_huge, pe_section_outside,
              pe_size_of_image_huge, pe_loadconfig_outside, pe_loadconfig_size_huge,
              pe_dynreloc_outside, pe_dynreloc_size_huge, pe_reloc_outside, pe_reloc_block_zero,
              pe_reloc_block_huge, pe_hotpatch_outside, pe_hotpatch_selfref)
}


# -- EVTX ----------------------------------------------------------------------------------
def evtx_chunk_records(data: bytes) -> list[int]:
    """Record count of every chunk, from its header (first/last record number)."""
    out = []
    for off in range(EVTX_HEADER, len(data) - EVTX_CHUNK + 1, EVTX_CHUNK):
        if data[off:off + 8] != b"ElfChnk\0":
            out.append(0)
            continue
        first, last = struct.unpack_from("<QQ", data, off + 8)
        out.append(last - first + 1 if last >= first else 0)
    return out


def evtx_bitflip_chunk(data: bytes, chunk: int = 2) -> bytes:
    """Bit flips inside one chunk's records (its records CRC no longer matches)."""
    buf = bytearray(data)
    base = EVTX_HEADER + chunk * EVTX_CHUNK
    for k in range(0x300, 0x8000, 0x700):  # fixed positions inside the record area
        buf[base + k] ^= 0x10
    return bytes(buf)


def evtx_zero_chunk_header(data: bytes, chunk: int = 1) -> bytes:
    """One chunk header zeroed (magic and counts gone)."""
    base = EVTX_HEADER + chunk * EVTX_CHUNK
    return data[:base] + bytes(0x200) + data[base + 0x200:]


def evtx_truncated(data: bytes, chunks: int = 3) -> bytes:
    """Cut in the middle of chunk `chunks` (the earlier chunks are intact)."""
    return data[: EVTX_HEADER + chunks * EVTX_CHUNK + EVTX_CHUNK // 2]


def evtx_header_only(data: bytes) -> bytes:
    """The 4 KiB file header and nothing else."""
    return data[:EVTX_HEADER]


def evtx_huge_chunk_count(data: bytes) -> bytes:
    """The file header claims 0xFFFF chunks (its CRC left stale, as a tampered copy would)."""
    return _put(data, 0x2A, "<H", 0xFFFF)


def evtx_empty(data: bytes) -> bytes:
    """Zero-length .evtx."""
    return b""


EVTX_CASES = {f.__name__: f for f in (evtx_bitflip_chunk, evtx_zero_chunk_header, evtx_truncated,
                                      evtx_header_only, evtx_huge_chunk_count, evtx_empty)}


# -- memory images -------------------------------------------------------------------------
def mem_cut(data: bytes, at: int = 0x400000) -> bytes:
    """The image cut at 4 MiB, inside the sample's page tables and process memory."""
    return data[:at]


def mem_holes(data: bytes, start: int = 0x420000, end: int = 0x428000) -> bytes:
    """[start, end) zeroed (pages lost in acquisition); by default 32 KiB of the sample's
    kernel pool. The hole test zeroes the pages of two EPROCESS records it looks up itself."""
    return data[:start] + bytes(end - start) + data[end:]


def mem_empty(data: bytes) -> bytes:
    """Zero-length image."""
    return b""


MEM_CASES = {f.__name__: f for f in (mem_cut, mem_holes, mem_empty)}


def write_corpus(outdir: Path, evtx_source: Path | None = None) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (src, fn) in PE_CASES.items():
        written.append(outdir / f"{name}.dll")
        written[-1].write_bytes(fn(src.read_bytes()))
    written.append(outdir / "pe_million_relocs.dll")
    written[-1].write_bytes(pe_million_relocs(PE_BASE.read_bytes()))
    if evtx_source is not None:
        for name, fn in EVTX_CASES.items():
            written.append(outdir / f"{name}.evtx")
            written[-1].write_bytes(fn(evtx_source.read_bytes()))
    for name, fn in MEM_CASES.items():
        written.append(outdir / f"{name}.raw")
        written[-1].write_bytes(fn(MEM_IMAGE.read_bytes()))
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "corrupt-corpus")
    default = REPO.parent / "shared" / "data" / "evtx" / "system.evtx"
    src = Path(sys.argv[2]) if len(sys.argv) > 2 else default
    for p in write_corpus(out, src if src.exists() else None):
        print(p)
