"""The sample images: a hotpatch-capable base DLL/driver, its patch images and a forged one.

Used by build_pe.py. Everything is fixed (timestamps, values, order) so the output is
byte-identical on every run.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from pe_writer import SCN_CODE, SCN_DATA, SCN_RDATA, SCN_RELOC, Image

from hpforensics.pe.structures import (
    CHUNK_INVERSE,
    HOT_PATCH_BASE_CAN_ROLL_BACK,
    HOT_PATCH_BASE_MACHINE_AMD64,
    IMAGE_DEBUG_TYPE_CODEVIEW,
    IMAGE_DEBUG_TYPE_EX_DLLCHARACTERISTICS,
    IMAGE_DLLCHARACTERISTICS_EX_HOTPATCH_COMPATIBLE,
    ChunkType,
    DynRelocSymbol,
    c_pe,
)

IMAGE_BASE_DLL = 0x180000000
IMAGE_BASE_SYS = 0x140000000
DEFAULT_COOKIE = 0x2B992DDFA232
LOAD_CONFIG_SIZE = 0x140  # the size MSVC 14.4x emits (vcruntime140.dll has the same)
GUARD_FLAGS = 0x10417500  # as MSVC: CF instrumented, function table present, 1 metadata byte
LC_POINTERS = ("SecurityCookie", "GuardCFCheckFunctionPointer", "GuardCFDispatchFunctionPointer",
               "GuardCFFunctionTable")


@dataclass
class Built:
    name: str
    data: bytes
    image: Image
    functions: dict[str, int] = field(default_factory=dict)  # name -> RVA
    first_bytes: dict[str, bytes] = field(default_factory=dict)

    @property
    def timestamp(self) -> int:
        return self.image.timestamp

    @property
    def checksum(self) -> int:
        return struct.unpack_from("<I", self.data, 0x80 + 24 + 64)[0]

    def rva(self, label: str) -> int:
        return self.image.labels[label]


# --- base-image code. Each body's first instruction is at least 2 bytes (hot-patchable).
def _base_functions(p: str) -> list[tuple[str, list]]:
    return [
        (f"{p}CheckToken", [b"\x8B\x05", ("rel32", "g_counter"), b"\x03\xC1\xC3"]),
        (f"{p}Add", [b"\x48\x8D\x04\x11\xC3"]),
        (f"{p}GetCount", [b"\x48\x8B\x05", ("rel32", "g_ptr"), b"\x8B\x00\xC3"]),
        # import control transfer site: rex call [rip+IAT] (7 bytes) + 5-byte nop
        (f"{p}CallImport", [b"\x48\x83\xEC\x28", b"\x48\xFF\x15", ("rel32", "iat0"),
                            b"\x0F\x1F\x44\x00\x00", b"\x48\x83\xC4\x28\xC3"]),
        (f"{p}Dispatch", [b"\x48\x83\xEC\x28\x48\x8B\xC1\xFF\x15",
                          ("rel32", "__guard_dispatch_icall_fptr"),
                          b"\x48\x83\xC4\x28\xC3"]),
        # indirect control transfer site: jmp rax padded to 5 bytes
        (f"{p}Indirect", [b"\x48\x8B\xC1", b"\xFF\xE0\xCC\xCC\xCC"]),
    ]


def _emit_function(img: Image, name: str, parts: list) -> int:
    img.emit(".text", b"\xCC" * 8)  # hot-patch padding: at least 6 bytes of int3 before F
    img.emit(".text", b"", label=name, align_to=16)
    return img.code(".text", parts)


def _imports(img: Image, dll: str, names: list[str]) -> None:
    """IAT first in .rdata (so the IAT directory is one run), then descriptors, ILT, names."""
    img.emit(".rdata", b"", label="iat", align_to=8)
    for i, _ in enumerate(names):
        img.ref(".rdata", "rva32", f"hint{i}")
        img.emit(".rdata", bytes(4), label=None)
        img.labels[f"iat{i}"] = img.here(".rdata") - 8
    img.emit(".rdata", bytes(8))
    img.label("iat_end", ".rdata")
    img.emit(".rdata", b"", label="import_desc", align_to=4)
    img.ref(".rdata", "rva32", "ilt")
    img.emit(".rdata", struct.pack("<II", 0, 0))
    img.ref(".rdata", "rva32", "dllname")
    img.ref(".rdata", "rva32", "iat")
    img.emit(".rdata", bytes(20))
    img.emit(".rdata", b"", label="ilt", align_to=8)
    for i, _ in enumerate(names):
        img.ref(".rdata", "rva32", f"hint{i}")
        img.emit(".rdata", bytes(4))
    img.emit(".rdata", bytes(8))
    for i, n in enumerate(names):
        img.emit(".rdata", struct.pack("<H", 0) + n.encode() + b"\0", label=f"hint{i}", align_to=2)
    img.emit(".rdata", dll.encode() + b"\0", label="dllname")
    img.directory(1, "import_desc", 40)
    img.directory(12, "iat", 8 * (len(names) + 1))


def _exports(img: Image, dllname: str, names: list[str]) -> None:
    names = sorted(names)
    n = len(names)
    img.emit(".rdata", b"", label="export_dir", align_to=4)
    img.emit(".rdata", struct.pack("<IIHH", 0, img.timestamp, 0, 0))
    img.ref(".rdata", "rva32", "exp_name")
    img.emit(".rdata", struct.pack("<III", 1, n, n))
    for lab in ("exp_funcs", "exp_names", "exp_ords"):
        img.ref(".rdata", "rva32", lab)
    img.emit(".rdata", b"", label="exp_funcs")
    for nm in names:
        img.ref(".rdata", "rva32", nm)
    img.emit(".rdata", b"", label="exp_names")
    for i, _ in enumerate(names):
        img.ref(".rdata", "rva32", f"expn{i}")
    img.emit(".rdata", struct.pack(f"<{n}H", *range(n)), label="exp_ords")
    img.emit(".rdata", dllname.encode() + b"\0", label="exp_name")
    for i, nm in enumerate(names):
        img.emit(".rdata", nm.encode() + b"\0", label=f"expn{i}")
    img.directory(0, "export_dir", img.here(".rdata") - img.labels["export_dir"])


def _debug(img: Image, pdb: str, guid: bytes, hotpatch_compatible: bool) -> None:
    img.emit(".rdata", b"", label="cv", align_to=4)
    cv = c_pe.CV_INFO_PDB70(Signature=b"RSDS", Guid=list(guid), Age=1)
    img.emit(".rdata", cv.dumps() + pdb.encode() + b"\0")
    cv_size = img.here(".rdata") - img.labels["cv"]
    ex = 0x01 | (IMAGE_DLLCHARACTERISTICS_EX_HOTPATCH_COMPATIBLE  # 0x01: CET compat
                 if hotpatch_compatible else 0)
    img.emit(".rdata", struct.pack("<I", ex), label="exdll", align_to=4)
    img.emit(".rdata", b"", label="debug_dir", align_to=4)
    for typ, lab, size in ((IMAGE_DEBUG_TYPE_CODEVIEW, "cv", cv_size),
                           (IMAGE_DEBUG_TYPE_EX_DLLCHARACTERISTICS, "exdll", 4)):
        img.emit(".rdata", struct.pack("<IIHHII", 0, img.timestamp, 0, 0, typ, size))
        img.ref(".rdata", "rva32", lab)
        img.ref(".rdata", "rva32", lab)  # PointerToRawData: patched to the file offset in _finish
    img.directory(6, "debug_dir", 56)


def _lc_field_offsets() -> dict[str, int]:
    out, off = {}, 0
    for f in c_pe.IMAGE_LOAD_CONFIG_DIRECTORY64.__fields__:
        out[f.name] = off
        off += len(f.type)
    return out


def _finish(img: Image, cfg_functions: list[str], dvrt: list[tuple[int, list[int]]],
            hot_patch_rva: int = 0) -> bytes:
    """Resolve fixups, fill the load config, write .reloc (base relocations + DVRT)."""
    offs = _lc_field_offsets()
    lc_rva = img.labels["load_config"]
    img.resolve()
    for f in LC_POINTERS:
        img.relocs.append(lc_rva + offs[f])
    blocks = img.reloc_blocks()
    reloc = img.sections[".reloc"]
    reloc.data += blocks
    img.directory(5, "reloc_start", len(blocks))
    img.labels["reloc_start"] = reloc.rva
    dvrt_off = 0
    if dvrt:
        while len(reloc.data) % 8:
            reloc.data += b"\0"
        dvrt_off = len(reloc.data)
        body = bytearray()
        for symbol, sites in dvrt:
            recs = bytearray()
            pages: dict[int, list[int]] = {}
            for s in sites:
                pages.setdefault(s & ~0xFFF, []).append(s & 0xFFF)
            for page, items in sorted(pages.items()):
                if symbol == DynRelocSymbol.GUARD_IMPORT_CONTROL_TRANSFER:
                    # IATIndex 0, call
                    payload = b"".join(struct.pack("<I", o | (1 << 12)) for o in items)
                else:
                    # jmp, no REX, no CFG check
                    payload = b"".join(struct.pack("<H", o) for o in items)
                    if len(payload) % 4:
                        payload += b"\0\0"
                recs += c_pe.IMAGE_BASE_RELOCATION(VirtualAddress=page,
                                                   SizeOfBlock=8 + len(payload)).dumps()
                recs += payload
            body += c_pe.IMAGE_DYNAMIC_RELOCATION64(Symbol=symbol,
                                                    BaseRelocSize=len(recs)).dumps() + recs
        reloc.data += c_pe.IMAGE_DYNAMIC_RELOCATION_TABLE(Version=1, Size=len(body)).dumps() + body
    # CFG function table (RVA + 1 metadata byte each), sorted as the loader requires.
    rdata = img.sections[".rdata"]
    table = sorted(img.labels[n] for n in cfg_functions)
    cft = img.labels["cfg_table"] - rdata.rva
    for i, rva in enumerate(table):
        struct.pack_into("<IB", rdata.data, cft + 5 * i, rva, 0)
    lc = c_pe.IMAGE_LOAD_CONFIG_DIRECTORY64(
        Size=LOAD_CONFIG_SIZE,
        SecurityCookie=img.va("__security_cookie"),
        GuardCFCheckFunctionPointer=img.va("__guard_check_icall_fptr"),
        GuardCFDispatchFunctionPointer=img.va("__guard_dispatch_icall_fptr"),
        GuardCFFunctionTable=img.va("cfg_table"),
        GuardCFFunctionCount=len(table),
        GuardFlags=GUARD_FLAGS,
        DynamicValueRelocTableOffset=dvrt_off if dvrt else 0,
        DynamicValueRelocTableSection=list(img.sections).index(".reloc") + 1 if dvrt else 0,
        HotPatchTableOffset=hot_patch_rva,
    )
    at = lc_rva - rdata.rva
    rdata.data[at : at + LOAD_CONFIG_SIZE] = lc.dumps()[:LOAD_CONFIG_SIZE]
    img.directory(10, "load_config", LOAD_CONFIG_SIZE)
    data = bytearray(img.write(dll_characteristics=0x4160))
    # Debug entries' PointerToRawData are file offsets: the writer knows them only now.
    dbg = img.labels["debug_dir"] - rdata.rva + _raw_offset(data, ".rdata")
    for i in range(2):
        rva = struct.unpack_from("<I", data, dbg + 28 * i + 20)[0]
        struct.pack_into("<I", data, dbg + 28 * i + 24,
                         rva - rdata.rva + _raw_offset(data, ".rdata"))
    return _rechecksum(bytes(data))


def _raw_offset(data: bytes, name: str) -> int:
    nsec = struct.unpack_from("<H", data, 0x86)[0]
    for i in range(nsec):
        at = 0x80 + 24 + 240 + 40 * i
        if data[at:at + 8].rstrip(b"\0").decode() == name:
            return struct.unpack_from("<I", data, at + 20)[0]
    raise KeyError(name)


def _rechecksum(data: bytes) -> bytes:
    import pefile

    pe = pefile.PE(data=data, fast_load=True)
    out = bytearray(data)
    struct.pack_into("<I", out, 0x80 + 24 + 64, pe.generate_checksum())
    return bytes(out)


def _common_layout(img: Image) -> None:
    for name, flags in ((".text", SCN_CODE), (".rdata", SCN_RDATA), (".data", SCN_DATA),
                        (".reloc", SCN_RELOC)):
        img.section(name, flags)
    img.emit(".data", struct.pack("<Q", DEFAULT_COOKIE), label="__security_cookie")
    img.emit(".rdata", b"", label="__guard_check_icall_fptr", align_to=8)
    img.ref(".rdata", "va64", "_guard_check_icall_nop")
    img.emit(".rdata", b"", label="__guard_dispatch_icall_fptr")
    img.ref(".rdata", "va64", "_guard_dispatch_icall_nop")


def _cfg_nops(img: Image) -> None:
    _emit_function(img, "_guard_check_icall_nop", [b"\xC3"])
    _emit_function(img, "_guard_dispatch_icall_nop", [b"\xFF\xE0"])


def build_base(name: str, *, kernel: bool, timestamp: int) -> Built:
    p = "Kp" if kernel else "Hp"
    img = Image(IMAGE_BASE_SYS if kernel else IMAGE_BASE_DLL, timestamp, dll=not kernel,
                subsystem=1 if kernel else 2)
    _common_layout(img)
    dll, names = (("ntoskrnl.exe", ["KeQueryTimeIncrement", "ExFreePool"]) if kernel
                  else ("kernel32.dll", ["GetTickCount", "Sleep"]))
    _imports(img, dll, names)
    img.emit(".data", struct.pack("<I", 7), label="g_counter", align_to=8)
    img.emit(".data", b"", label="g_ptr", align_to=8)
    img.ref(".data", "va64", "g_counter")
    built = Built(name, b"", img)
    for fname, parts in _base_functions(p):
        built.functions[fname] = _emit_function(img, fname, parts)
    entry = "DriverEntry" if kernel else "DllMain"
    _emit_function(img, entry, [b"\xB8\x01\x00\x00\x00\xC3"])
    img.entry_label = entry
    _cfg_nops(img)
    _exports(img, name, list(built.functions))
    img.emit(".rdata", b"", label="cfg_table", align_to=4)
    cfg = list(built.functions) + [entry, "_guard_check_icall_nop", "_guard_dispatch_icall_nop"]
    img.emit(".rdata", bytes(5 * len(cfg)))
    img.emit(".rdata", b"", label="load_config", align_to=8)
    img.emit(".rdata", bytes(LOAD_CONFIG_SIZE))
    _debug(img, f"{name.rsplit('.', 1)[0]}.pdb", hashlib.md5(name.encode()).digest(), True)
    call = img.labels[f"{p}CallImport"] + 4
    indirect = img.labels[f"{p}Indirect"] + 3
    dvrt = [(DynRelocSymbol.GUARD_IMPORT_CONTROL_TRANSFER, [call]),
            (DynRelocSymbol.GUARD_INDIR_CONTROL_TRANSFER, [indirect])]
    built.data = _finish(img, cfg, dvrt)
    text = img.sections[".text"]
    for fname, rva in built.functions.items():
        built.first_bytes[fname] = bytes(text.data[rva - text.rva : rva - text.rva + 4])
    return built


@dataclass
class PatchSpec:
    name: str
    sequence: int
    base: Built
    functions: list[str]  # base functions replaced
    rel32_target: str  # base function the patch code calls directly (REL32 entry)
    timestamp: int
    forge: bool = False  # IMAGE_HOT_PATCH_BASE names a base that is not `base`


def build_patch(spec: PatchSpec, *, kernel: bool) -> Built:
    img = Image(IMAGE_BASE_SYS if kernel else IMAGE_BASE_DLL, spec.timestamp, dll=not kernel,
                subsystem=1 if kernel else 2)
    _common_layout(img)
    img.emit(".data", struct.pack("<I", 7), label="g_counter", align_to=8)
    # __ref_ pointer, as LLVM's pass emits
    img.emit(".data", b"", label="__ref_g_counter", align_to=8)
    img.ref(".data", "va64", "g_counter")
    img.emit(".data", bytes(8), label="__imp_copy", align_to=8)  # filled by an INDIRECT entry
    built = Built(spec.name, b"", img)
    # A patch image's own prologue code first, so its function RVAs differ from the base's.
    _emit_function(img, "_hp_init", [b"\x48\x83\xEC\x28\x33\xC0\x48\x83\xC4\x28\xC3"])
    tag = f"_{spec.sequence}" if not spec.forge else "_f"
    for fname in spec.functions:
        pname = fname + tag
        if fname.endswith("Add"):
            parts = [b"\x48\x83\xEC\x28\x48\x8D\x04\x11\xE8", ("rva32", "rel32_placeholder"),
                     b"\x48\x83\xC4\x28\xC3"]
        elif spec.forge:
            parts = [b"\x48\x31\xC0\x48\x8B\x05", ("rel32", "__imp_copy"), b"\xFF\xE0"]
        else:
            parts = [b"\x48\x8B\x05", ("rel32", "__ref_g_counter"), b"\x8B\x00\x03\xC1\x83\xF9",
                     bytes([spec.sequence]), b"\xC3"]
        built.functions[pname] = _emit_function(img, pname, parts)
    img.labels["rel32_placeholder"] = 0  # the rel32 stays 0 on disk; the kernel fills it (REL32)
    entry = "DriverEntry" if kernel else "DllMain"
    _emit_function(img, entry, [b"\xB8\x01\x00\x00\x00\xC3"])
    img.entry_label = entry
    _cfg_nops(img)
    img.emit(".rdata", b"", label="cfg_table", align_to=4)
    cfg = list(built.functions) + [entry, "_guard_check_icall_nop", "_guard_dispatch_icall_nop"]
    img.emit(".rdata", bytes(5 * len(cfg)))
    img.emit(".rdata", b"", label="load_config", align_to=8)
    img.emit(".rdata", bytes(LOAD_CONFIG_SIZE))
    _debug(img, f"{spec.name.rsplit('.', 1)[0]}.pdb", hashlib.md5(spec.name.encode()).digest(),
           False)
    hp_rva = _hot_patch_records(img, spec, built)
    built.data = _finish(img, cfg, [], hot_patch_rva=hp_rva)
    return built


def _hot_patch_records(img: Image, spec: PatchSpec, built: Built) -> int:
    """IMAGE_HOT_PATCH_INFO v3 + base list + IMAGE_HOT_PATCH_BASE + hashes + patch table."""
    base = spec.base
    info_rva = img.emit(".rdata", b"", label="hot_patch_info", align_to=8)
    info_size = len(c_pe.IMAGE_HOT_PATCH_INFO)
    base_size = len(c_pe.IMAGE_HOT_PATCH_BASE)
    hashes_size = len(c_pe.IMAGE_HOT_PATCH_HASHES)
    list_off = info_size + 4  # 4 bytes of padding, as the public PoC lays it out
    base_off = list_off + 4
    hashes_off = base_off + base_size
    table_off = hashes_off + hashes_size + 4 - (hashes_off + hashes_size) % 4
    p = "Kp" if spec.name.endswith(".sys") else "Hp"
    sep = "_f" if spec.forge else f"_{spec.sequence}"
    fn = [(base.rva(f), built.rva(f + sep), struct.unpack("<I", base.first_bytes[f])[0])
          for f in spec.functions]
    add = next(f for f in spec.functions if f.endswith("Add")) + sep if not spec.forge else None
    table = bytearray()
    table += struct.pack("<I", ChunkType.FUNCTION | len(fn))
    for b, pt, first in fn:
        table += struct.pack("<III", b, pt, first)
    if not spec.forge:
        table += struct.pack("<I", ChunkType.ABSOLUTE | CHUNK_INVERSE | 1)
        table += struct.pack("<III", img.labels["__ref_g_counter"], base.rva("g_counter"), 0)
        table += struct.pack("<I", ChunkType.INDIRECT | CHUNK_INVERSE | 1)
        table += struct.pack("<III", img.labels["__imp_copy"], base.rva("iat0"), 0)
        table += struct.pack("<I", ChunkType.REL32 | CHUNK_INVERSE | 1)
        table += struct.pack("<III", img.labels[add] + 9, base.rva(f"{p}{spec.rel32_target}"), 0)
    table += struct.pack("<I", 0)
    checksum = base.checksum ^ (0x5A5A if spec.forge else 0)
    info = c_pe.IMAGE_HOT_PATCH_INFO(Version=3, Size=table_off + len(table),
                                     SequenceNumber=spec.sequence,
                                     BaseImageList=list_off, BaseImageCount=1, BufferOffset=0,
                                     ExtraPatchSize=1)
    hpbase = c_pe.IMAGE_HOT_PATCH_BASE(
        SequenceNumber=spec.sequence,
        Flags=HOT_PATCH_BASE_MACHINE_AMD64 | HOT_PATCH_BASE_CAN_ROLL_BACK,
        OriginalTimeDateStamp=base.timestamp, OriginalCheckSum=checksum,
        CodeIntegrityInfo=hashes_off, CodeIntegritySize=hashes_size, PatchTable=table_off,
        BufferOffset=0)
    hashes = c_pe.IMAGE_HOT_PATCH_HASHES(SHA256=list(hashlib.sha256(base.data).digest()),
                                         SHA1=list(hashlib.sha1(base.data).digest()))
    blob = bytearray(info.dumps() + bytes(4) + struct.pack("<I", base_off) + hpbase.dumps()
                     + hashes.dumps())
    blob += bytes(table_off - len(blob)) + table
    img.emit(".rdata", bytes(blob))
    return info_rva
