"""Dynamic value relocation table (versions 1 and 2), reduced to the bytes the loader may rewrite.

Each kind of entry says where the loader or kernel patches code or data at load time; for a
byte-for-byte comparison with the file only the ranges matter, so every record becomes a
`DynamicRelocation(rva, size, kind)`. Where the size of a rewritten site is not public it is
our decision, recorded in docs/hotpatch-format.md and in SITE_SIZE below.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

from hpforensics.pe.loadconfig import LoadConfig
from hpforensics.pe.reader import RvaReader
from hpforensics.pe.structures import (
    ARM64X_FIXUP_DELTA,
    ARM64X_FIXUP_VALUE,
    ARM64X_FIXUP_ZEROFILL,
    DynRelocSymbol,
    FunctionOverrideKind,
    c_pe,
)

log = logging.getLogger(__name__)

MAX_TABLE_SIZE = 16 << 20  # bytes; a larger declared Size is treated as corrupt
MAX_RECORDS = 1 << 20  # per table, across all blocks

# Bytes rewritten at each fixup site (inference, see docs/hotpatch-format.md).
SITE_SIZE = {
    DynRelocSymbol.GUARD_IMPORT_CONTROL_TRANSFER: 12,  # rex call/jmp [rip+IAT] (7) + 5-byte nop
    DynRelocSymbol.GUARD_INDIR_CONTROL_TRANSFER: 5,  # call/jmp reg padded to a 5-byte rel32 call
    DynRelocSymbol.GUARD_SWITCHTABLE_BRANCH: 5,  # jmp reg padded to a 5-byte rel32 jmp
    DynRelocSymbol.ARM64_KERNEL_IMPORT_CALL_TRANSFER: 4,  # one instruction
}


@dataclass(frozen=True)
class DynamicRelocation:
    """One byte range the loader/kernel may rewrite."""

    rva: int
    size: int
    kind: str  # "import_control_transfer", "function_override", "arm64x", ...
    symbol: int
    detail: str = ""


@dataclass
class FunctionOverride:
    original_rva: int
    override_rvas: list[int]
    bdd_offset: int
    sites: list[tuple[int, int]]  # (rva, FunctionOverrideKind)
    bdd_nodes: list[tuple[int, int, int]] = field(default_factory=list)  # (left, right, value)


@dataclass
class DynamicRelocationTable:
    rva: int
    version: int
    size: int
    relocations: list[DynamicRelocation] = field(default_factory=list)
    symbols: list[int] = field(default_factory=list)  # symbol of each entry, in table order
    function_overrides: list[FunctionOverride] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def table_rva(lc: LoadConfig, sections: list, image_base: int) -> int | None:
    """Where the table is: section index (1-based) + offset, or the older VA field."""
    off = lc.dynamic_value_reloc_table_offset
    sec = lc.dynamic_value_reloc_table_section
    if off and sec:
        if sec > len(sections):
            return -1
        return sections[sec - 1].rva + off
    va = lc.get("DynamicValueRelocTable")
    if va:
        return va - image_base
    return None


class _Budget:
    def __init__(self, reader: RvaReader) -> None:
        self.left = MAX_RECORDS
        self.reader = reader

    def take(self, n: int, rva: int) -> None:
        self.left -= n
        if self.left < 0:
            raise self.reader.error("dynamic relocation table has too many records",
                                    self.reader.where(rva))


def _blocks(reader: RvaReader, rva: int, size: int, budget: _Budget):
    """Yield (page_rva, record_bytes) for each IMAGE_BASE_RELOCATION block in [rva, rva+size)."""
    end = rva + size
    hdr = len(c_pe.IMAGE_BASE_RELOCATION)
    while rva + hdr <= end:
        block = c_pe.IMAGE_BASE_RELOCATION(reader.read(rva, hdr, "dynamic relocation block"))
        if block.SizeOfBlock == 0 and block.VirtualAddress == 0:
            break  # padding
        if block.SizeOfBlock < hdr or rva + block.SizeOfBlock > end:
            raise reader.error(
                f"dynamic relocation block SizeOfBlock {block.SizeOfBlock:#x} overruns its entry",
                reader.where(rva),
            )
        body = reader.read(rva + hdr, block.SizeOfBlock - hdr, "dynamic relocation records")
        budget.take(len(body) // 2, rva)
        yield block.VirtualAddress, body
        rva += block.SizeOfBlock


def _u16s(body: bytes) -> list[int]:
    return list(struct.unpack_from(f"<{len(body) // 2}H", body))


def _fixed_sites(reader, symbol, rva, size, budget, is64) -> list[DynamicRelocation]:
    kind = DynRelocSymbol(symbol).name.lower().removeprefix("guard_")
    out = []
    for page, body in _blocks(reader, rva, size, budget):
        if symbol == DynRelocSymbol.GUARD_IMPORT_CONTROL_TRANSFER:
            for rec in struct.unpack_from(f"<{len(body) // 4}I", body):
                off, indirect, iat_index = rec & 0xFFF, (rec >> 12) & 1, rec >> 13
                n = SITE_SIZE[symbol] if is64 else 6
                out.append(DynamicRelocation(page + off, n, kind, symbol,
                                             f"iat_index={iat_index} "
                                             f"{'call' if indirect else 'jmp'}"))
        elif symbol == DynRelocSymbol.ARM64_KERNEL_IMPORT_CALL_TRANSFER:
            for rec in struct.unpack_from(f"<{len(body) // 4}I", body):
                off = (rec & 0x3FF) * 4
                out.append(DynamicRelocation(page + off, 4, kind, symbol, f"iat_index={rec >> 17}"))
        else:
            for rec in _u16s(body):
                if rec == 0:
                    continue
                off = rec & 0xFFF
                n = SITE_SIZE[DynRelocSymbol(symbol)]
                detail = ""
                if symbol == DynRelocSymbol.GUARD_INDIR_CONTROL_TRANSFER:
                    rex = (rec >> 13) & 1
                    n += rex
                    detail = (f"{'call' if (rec >> 12) & 1 else 'jmp'} rex_w={rex} "
                              f"cfg_check={(rec >> 14) & 1}")
                else:
                    detail = f"register={rec >> 12}"
                out.append(DynamicRelocation(page + off, n, kind, symbol, detail))
    return out


def _arm64x(reader, rva, size, budget) -> list[DynamicRelocation]:
    out = []
    for page, body in _blocks(reader, rva, size, budget):
        words = _u16s(body)
        i = 0
        while i < len(words):
            rec = words[i]
            i += 1
            if rec == 0:
                break
            off, typ, arg = rec & 0xFFF, (rec >> 12) & 3, rec >> 14
            if typ == ARM64X_FIXUP_ZEROFILL:
                out.append(DynamicRelocation(page + off, 1 << arg, "arm64x", 6, "zerofill"))
            elif typ == ARM64X_FIXUP_VALUE:
                n = 1 << arg
                out.append(DynamicRelocation(page + off, n, "arm64x", 6, "value"))
                i += max(n // 2, 1)
            elif typ == ARM64X_FIXUP_DELTA:
                out.append(DynamicRelocation(page + off, 4, "arm64x", 6, "delta"))
                i += 1
            else:
                raise reader.error(f"ARM64X fixup of unknown type {typ}", reader.where(page + off))
    return out


def _function_override(reader, rva, size, budget,
                       table: DynamicRelocationTable) -> list[DynamicRelocation]:
    end = rva + size
    hsize = len(c_pe.IMAGE_FUNCTION_OVERRIDE_HEADER)
    header = c_pe.IMAGE_FUNCTION_OVERRIDE_HEADER(reader.read(rva, hsize,
                                                             "function override header"))
    cur = rva + hsize
    fo_end = cur + header.FuncOverrideSize
    if fo_end > end:
        raise reader.error("FuncOverrideSize overruns its dynamic relocation entry",
                           reader.where(rva))
    rsize = len(c_pe.IMAGE_FUNCTION_OVERRIDE_DYNAMIC_RELOCATION)
    out: list[DynamicRelocation] = []
    overrides: list[FunctionOverride] = []
    while cur + rsize <= fo_end:
        rec = c_pe.IMAGE_FUNCTION_OVERRIDE_DYNAMIC_RELOCATION(reader.read(cur, rsize,
                                                                          "function override"))
        cur += rsize
        if cur + rec.RvaSize + rec.BaseRelocSize > fo_end:
            raise reader.error("function override record overruns FuncOverrideSize",
                               reader.where(cur - rsize))
        budget.take(rec.RvaSize // 4, cur)
        raw = reader.read(cur, rec.RvaSize - rec.RvaSize % 4, "function override RVAs")
        rvas = list(struct.unpack_from(f"<{len(raw) // 4}I", raw))
        cur += rec.RvaSize
        sites = []
        for page, body in _blocks(reader, cur, rec.BaseRelocSize, budget):
            for w in _u16s(body):
                kind = w >> 12
                if kind == FunctionOverrideKind.INVALID:
                    continue
                sites.append((page + (w & 0xFFF), kind))
                name = FunctionOverrideKind(kind).name if kind < 4 else kind
                out.append(DynamicRelocation(page + (w & 0xFFF), 4, "function_override", 7,
                                             f"{name} original={rec.OriginalRva:#x}"))
        cur += rec.BaseRelocSize
        overrides.append(FunctionOverride(rec.OriginalRva, rvas, rec.BDDOffset, sites))
    # BDD (binary decision diagram) data follows the override records; BDDOffset is relative to it.
    bdd_base = fo_end
    isize = len(c_pe.IMAGE_BDD_INFO)
    for fo in overrides:
        at = bdd_base + fo.bdd_offset
        if at + isize > end:
            table.warnings.append(f"BDD info of override {fo.original_rva:#x} is outside its entry")
            continue
        info = c_pe.IMAGE_BDD_INFO(reader.read(at, isize, "BDD info"))
        n = info.BDDSize // 8
        if at + isize + n * 8 > end:
            raise reader.error("BDDSize overruns its dynamic relocation entry", reader.where(at))
        budget.take(n, at)
        raw = reader.read(at + isize, n * 8, "BDD nodes")
        fo.bdd_nodes = [struct.unpack_from("<HHI", raw, i * 8) for i in range(n)]
    table.function_overrides.extend(overrides)
    return out


def _prologue(reader, rva, size, budget) -> list[DynamicRelocation]:
    count = reader.read(rva, 1, "RF prologue header")[0]
    out = []
    for page, body in _blocks(reader, rva + 1 + count, size - 1 - count, budget):
        for w in _u16s(body):
            if w:
                out.append(DynamicRelocation(page + (w & 0xFFF), count, "rf_prologue", 1))
    return out


def _entry(reader, symbol, rva, size, budget, is64, table) -> list[DynamicRelocation]:
    if symbol in (3, 4, 5, 8):
        return _fixed_sites(reader, symbol, rva, size, budget, is64)
    if symbol == DynRelocSymbol.FUNCTION_OVERRIDE:
        return _function_override(reader, rva, size, budget, table)
    if symbol == DynRelocSymbol.ARM64X:
        return _arm64x(reader, rva, size, budget)
    if symbol == DynRelocSymbol.GUARD_RF_PROLOGUE:
        return _prologue(reader, rva, size, budget)
    if symbol == DynRelocSymbol.GUARD_RF_EPILOGUE:
        table.warnings.append("RF epilogue relocations are not decoded (layout not public)")
        return []
    table.warnings.append(f"unknown dynamic relocation symbol {symbol:#x} ({size} bytes) skipped")
    return []


def parse_dynamic_relocations(reader: RvaReader, rva: int, is64: bool,
                              source: int | None = None) -> DynamicRelocationTable:
    """`source`: RVA of the load-config field locating the table, for errors outside the file."""
    hsize = len(c_pe.IMAGE_DYNAMIC_RELOCATION_TABLE)
    head = c_pe.IMAGE_DYNAMIC_RELOCATION_TABLE(reader.read(rva, hsize, "dynamic relocation table",
                                                           source))
    if head.Version not in (1, 2):
        raise reader.error(f"dynamic relocation table version {head.Version} is unknown",
                           reader.where(rva))
    if head.Size > MAX_TABLE_SIZE:
        raise reader.error(f"dynamic relocation table Size {head.Size:#x} is implausible",
                           reader.where(rva))
    reader.read(rva + hsize, head.Size, "dynamic relocation table body",
                source)  # bounds check once
    table = DynamicRelocationTable(rva, head.Version, head.Size)
    budget = _Budget(reader)
    cur, end = rva + hsize, rva + hsize + head.Size
    while cur < end:
        if head.Version == 1:
            st = c_pe.IMAGE_DYNAMIC_RELOCATION64 if is64 else c_pe.IMAGE_DYNAMIC_RELOCATION32
            ent = st(reader.read(cur, len(st), "dynamic relocation entry"))
            body, body_size = cur + len(st), ent.BaseRelocSize
        else:
            st = c_pe.IMAGE_DYNAMIC_RELOCATION64_V2 if is64 else c_pe.IMAGE_DYNAMIC_RELOCATION32_V2
            ent = st(reader.read(cur, len(st), "dynamic relocation entry"))
            if ent.HeaderSize < len(st):
                raise reader.error(f"dynamic relocation HeaderSize {ent.HeaderSize:#x} too small",
                                   reader.where(cur))
            body, body_size = cur + ent.HeaderSize, ent.FixupInfoSize
        if body + body_size > end:
            raise reader.error("dynamic relocation entry overruns the table", reader.where(cur))
        table.symbols.append(ent.Symbol)
        table.relocations += _entry(reader, ent.Symbol, body, body_size, budget, is64, table)
        cur = body + body_size
    for w in table.warnings:
        log.info("%s: %s", reader.path, w)
    return table
