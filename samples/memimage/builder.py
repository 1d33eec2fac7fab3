"""A small Windows 11 24H2 x64 machine in a raw physical memory file.

What Volatility 3 needs to find it without a config file, and where this builder puts it:
- the kernel DTB in the 0x150000–0x2A0000 physical band with one self-referencing PML4 entry;
- KUSER_SHARED_DATA mapped at 0xFFFFF78000000000 and 0x7FFE0000 to the same frame;
- the x64 low stub (PROCESSOR_START_BLOCK) at physical 0x1000 naming the kernel DTB and an
  address inside the kernel image, so the kernel base is found without scanning;
- the kernel image with its CodeView record (ntkrnlmp.pdb, GUID, age) matching the ISF file.
Then the objects the Windows plugins walk: PsActiveProcessHead → EPROCESS list (per-process
DTBs), PEB → PEB_LDR_DATA → LDR_DATA_TABLE_ENTRY lists, VAD AVL trees with image nodes
(Subsection → ControlArea → FilePointer → FILE_OBJECT.FileName), PsLoadedModuleList.
"""
from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass, field

from memimage import isf, pemini
from memimage.paging import PAGE, AddressSpace, PhysicalMemory, canonical
from memimage.winobj import Heap, link_list, put_fields, size_of, unicode_fields

KERNEL_DTB = 0x1AD000
LOW_STUB = 0x1000
KUSER_KERNEL = 0xFFFFF78000000000
KUSER_USER = 0x7FFE0000
POOL_BASE = 0xFFFFA50C40000000
KERNEL_BASE = 0xFFFFF80610000000
KERNEL_SIZE = 0x1046000
USER_HEAP = 0x000001F3C0000000
PEB_BASE = 0x000000E1F0000000

# VAD protection indices (MmProtectToValue) and types
PROT_READONLY, PROT_EXECUTE_READ, PROT_READWRITE = 1, 3, 4
PROT_EXECUTE_READWRITE, PROT_EXECUTE_WRITECOPY = 6, 7
VAD_NONE, VAD_IMAGE = 0, 2


def filetime(unix_seconds: int) -> int:
    return (unix_seconds + 11644473600) * 10_000_000


@dataclass
class Vad:
    start: int
    end: int  # exclusive
    protection: int
    private: bool
    vad_type: int = VAD_NONE
    file_name: str = ""
    commit: int = 0


@dataclass
class LdrEntry:
    base: int
    size: int
    full_name: str
    entry_point: int = 0
    timestamp: int = 0
    checksum: int = 0
    load_reason: int = 0
    hotpatch_state: int = 0
    active_patch_base: int = 0
    load_time: int = 0


@dataclass
class Process:
    pid: int
    name: str
    ppid: int
    create_time: int
    space: AddressSpace
    eprocess: int = 0
    peb: int = 0
    heap: Heap | None = None
    vads: list[Vad] = field(default_factory=list)
    modules: list[LdrEntry] = field(default_factory=list)
    hotpatched: bool = False


class WindowsImageBuilder:
    def __init__(self, size: int, guid: uuid.UUID, age: int, build: int = 26100,
                 now: int = 0) -> None:
        self.mem = PhysicalMemory(size, start=0x300000)
        self.guid, self.age, self.build = guid, age, build
        self.system_time = filetime(now) if now else 0
        self.kernel = AddressSpace(self.mem, dtb=KERNEL_DTB)
        self.pool = Heap(self.kernel, POOL_BASE, user=False)
        self._frames_by_content: dict[bytes, int] = {}
        self.processes: list[Process] = []
        self.drivers: list[LdrEntry] = []
        self.symbols: dict[str, int] = {}
        self._prepare_kernel_half()

    # -- kernel ---------------------------------------------------------------------------
    def _prepare_kernel_half(self) -> None:
        # Touch every kernel region first: processes copy the kernel PML4 entries at creation.
        self.kuser = self.mem.alloc()
        self.kernel.map(KUSER_KERNEL, self.kuser, user=False, writable=False)
        self.kernel.map(KUSER_USER, self.kuser, user=True, writable=False)
        self.pool.alloc(16)
        put_fields(self.kernel, "_KUSER_SHARED_DATA", KUSER_KERNEL, {
            "NtBuildNumber": self.build, "NtProductType": 1, "ProductTypeIsValid": 1,
            "NtMajorVersion": 10, "NtMinorVersion": 0, "ImageNumberLow": 0x8664,
            "ImageNumberHigh": 0x8664, "SystemTime.LowPart": self.system_time & 0xFFFFFFFF,
            "SystemTime.High1Time": self.system_time >> 32,
            "SystemTime.High2Time": self.system_time >> 32})
        self.kernel.write(KUSER_KERNEL + isf.resolve("_KUSER_SHARED_DATA", "NtSystemRoot")[0],
                          "C:\\Windows".encode("utf-16-le"))
        self._build_kernel_image()

    def _build_kernel_image(self) -> None:
        debug = pemini.codeview("ntkrnlmp.pdb", self.guid, self.age)
        text = bytes.fromhex("4883ec28e8000000004883c428c3") * 16
        sections = [pemini.Section(b".text", text, pemini.SCN_CODE),
                    pemini.Section(b".rdata", b"\0" * 64, pemini.SCN_RDATA),
                    pemini.Section(b".data", b"", pemini.SCN_DATA, size=KERNEL_SIZE - 0x3000)]
        data_rva = pemini.section_rva(sections, b".data", debug)
        off = 0
        for name, size in isf.KERNEL_GLOBALS:
            self.symbols[name] = data_rva + off
            off += (size + 15) & ~15
        image = pemini.build_pe(image_base=KERNEL_BASE, sections=sections,
                                timestamp=0x66F2B1A9, dll=False, subsystem=1, debug=debug)
        self.kernel_image = image
        # only the first pages are resident; the rest of the image is never touched here
        self.map_image_pages(self.kernel, KERNEL_BASE, image[:0x4000], user=False)
        values = [v | m for m in (0, 0x200, 0x100, 0x400)
                  for v in (0x01, 0x02, 0x10, 0x20, 0x04, 0x08, 0x40, 0x80)]
        self.kernel.write(KERNEL_BASE + self.symbols["MmProtectToValue"],
                          struct.pack("<32i", *values))
        self.kernel.write(KERNEL_BASE + self.symbols["MmSystemRangeStart"],
                          struct.pack("<Q", 0xFFFF800000000000))
        self.kernel.write(KERNEL_BASE + self.symbols["NtBuildNumber"],
                          struct.pack("<I", 0xF0000000 | self.build))
        self.kernel.write(KERNEL_BASE + self.symbols["KeNumberProcessors"], struct.pack("<I", 2))
        put_fields(self.kernel, "_DBGKD_GET_VERSION64", KERNEL_BASE + self.symbols["KdVersionBlock"], {
            "MajorVersion": 0xF, "MinorVersion": self.build, "ProtocolVersion": 6,
            "KdSecondaryVersion": 2, "Flags": 0x47, "MachineType": 0x8664,
            "MaxPacketType": 0x0C, "MaxStateChange": 3, "MaxManipulate": 0x33,
            "KernBase": KERNEL_BASE, "PsLoadedModuleList": KERNEL_BASE + self.symbols["PsLoadedModuleList"]})
        # x64 low stub: jmp + completion flag signature, LmTarget, Cr3
        stub = bytearray(PAGE)
        stub[0:8] = bytes.fromhex("e9f8060001000000")
        struct.pack_into("<Q", stub, 0x70, (KERNEL_BASE + 0x1000) & ((1 << 48) - 1))
        struct.pack_into("<Q", stub, 0xA0, KERNEL_DTB)
        self.mem.write(LOW_STUB, bytes(stub))

    def shared_frame(self, page: bytes) -> int:
        """Image pages identical across address spaces share one frame, as prototype PTEs do."""
        key = hashlib.sha256(page).digest()
        frame = self._frames_by_content.get(key)
        if frame is None:
            frame = self.mem.alloc()
            self.mem.write(frame, page)
            self._frames_by_content[key] = frame
        return frame

    def map_image_pages(self, space: AddressSpace, base: int, image: bytes, *, user: bool,
                        paged_out: tuple[int, ...] = (), writable: bool = False,
                        executable: bool = True) -> None:
        for off in range(0, len(image), PAGE):
            page = image[off : off + PAGE].ljust(PAGE, b"\0")
            va = base + off
            if off in paged_out:
                space.map_paged_out(va, 0x2000 + (va >> 12 & 0xFFFFF))
                continue
            space.map(va, self.shared_frame(page), user=user, writable=writable,
                      executable=executable)

    def map_kernel_image(self, base: int, image: bytes, paged_out: tuple[int, ...] = ()) -> None:
        self.map_image_pages(self.kernel, base, image, user=False, paged_out=paged_out)

    def add_driver(self, entry: LdrEntry, image: bytes | None,
                   paged_out: tuple[int, ...] = ()) -> None:
        if image is not None:
            self.map_kernel_image(entry.base, image, paged_out)
        self.drivers.append(entry)

    # -- processes ------------------------------------------------------------------------
    def create_process(self, pid: int, name: str, ppid: int, create_time: int,
                       system: bool = False) -> Process:
        space = self.kernel if system else AddressSpace(self.mem, kernel=self.kernel)
        proc = Process(pid, name, ppid, create_time, space)
        if not system:
            proc.space.map(KUSER_USER, self.kuser, user=True, writable=False)
            proc.vads.append(Vad(KUSER_USER, KUSER_USER + PAGE, PROT_READONLY, True))
            heap_base = USER_HEAP + pid * 0x100000
            proc.heap = Heap(proc.space, heap_base, user=True)
            proc.peb = PEB_BASE + pid * 0x10000
            proc.space.alloc_map(proc.peb, PAGE, user=True)
            proc.vads.append(Vad(proc.peb, proc.peb + PAGE, PROT_READWRITE, True, commit=1))
        self.processes.append(proc)
        return proc

    def map_user_image(self, proc: Process, base: int, image: bytes, full_name: str,
                       ldr: LdrEntry | None, paged_out: tuple[int, ...] = (),
                       size: int | None = None) -> None:
        """Map an image (already in memory layout) with its image VAD; list it if `ldr`.

        `size` larger than the bytes given: the rest of the view is reserved but not resident.
        """
        self.map_image_pages(proc.space, base, image, user=True, paged_out=paged_out)
        size = size or (len(image) + PAGE - 1) & ~(PAGE - 1)
        proc.vads.append(Vad(base, base + size, PROT_EXECUTE_WRITECOPY, False, VAD_IMAGE,
                             nt_path(full_name), commit=0))
        if ldr is not None:
            proc.modules.append(ldr)

    def map_private(self, proc: Process, base: int, data: bytes, protection: int) -> None:
        """Private committed memory (HPAT pages, an attacker's buffer) with its VadS."""
        executable = protection in (PROT_EXECUTE_READ, PROT_EXECUTE_READWRITE)
        for off in range(0, len(data), PAGE):
            frame = self.mem.alloc()
            self.mem.write(frame, data[off : off + PAGE])
            proc.space.map(base + off, frame, user=True,
                           writable=protection in (PROT_READWRITE, PROT_EXECUTE_READWRITE),
                           executable=executable)
        size = (len(data) + PAGE - 1) & ~(PAGE - 1)
        proc.vads.append(Vad(base, base + size, protection, True, commit=size // PAGE))

    def map_kernel_private(self, base: int, data: bytes) -> None:
        for off in range(0, len(data), PAGE):
            frame = self.mem.alloc()
            self.mem.write(frame, data[off : off + PAGE])
            self.kernel.map(base + off, frame, user=False, writable=False, executable=True)

    def finalize(self) -> dict[str, int]:
        """Write every kernel/user object and link the lists. Returns the ISF symbols."""
        eprocs = [self._write_eprocess(p) for p in self.processes]
        head = KERNEL_BASE + self.symbols["PsActiveProcessHead"]
        link_list(self.kernel, head, [e + 0x1D8 for e in eprocs])
        self.kernel.write(KERNEL_BASE + self.symbols["PsInitialSystemProcess"],
                          struct.pack("<Q", canonical(eprocs[0])))
        kldrs = [self._write_kldr(d) for d in self.drivers]
        link_list(self.kernel, KERNEL_BASE + self.symbols["PsLoadedModuleList"], kldrs)
        return dict(self.symbols)

    def _write_eprocess(self, p: Process) -> int:
        size = size_of("_EPROCESS")
        ep = self.pool.alloc(size, tag=b"Proc")
        p.eprocess = ep
        session = self.pool.alloc(0x40, tag=b"MmSt")
        self.kernel.write(session + 8, struct.pack("<I", 0 if p.pid < 500 else 1))
        handles = self.pool.alloc(size_of("_HANDLE_TABLE"), tag=b"Obtb")
        tlh = ep + isf.resolve("_EPROCESS", "ThreadListHead")[0]
        fields: dict[str, int | bytes] = {
            "Pcb.Header.Type": 3, "Pcb.Header.Size": size // 8 & 0xFF,
            "Pcb.DirectoryTableBase": p.space.dtb,
            "UniqueProcessId": p.pid, "InheritedFromUniqueProcessId": p.ppid,
            "CreateTime.QuadPart": filetime(p.create_time) if p.pid != 4 else 0,
            "ImageFileName": p.name.encode()[:14].ljust(15, b"\0"),
            "ThreadListHead.Flink": tlh, "ThreadListHead.Blink": tlh, "ActiveThreads": 1,
            "Session": session if p.pid != 4 else 0, "ObjectTable": handles,
            "Peb": p.peb, "PriorityClass": 2,
        }
        if p.pid != 4:
            self._write_peb(p)
        root, count = self._write_vads(p)
        fields["VadRoot.Root"] = root
        fields["VadCount"] = count
        put_fields(self.kernel, "_EPROCESS", ep, fields)
        return ep

    def _write_peb(self, p: Process) -> None:
        assert p.heap is not None
        ldr = p.heap.alloc(size_of("_PEB_LDR_DATA"))
        params = p.heap.alloc(size_of("_RTL_USER_PROCESS_PARAMETERS"))
        exe = p.modules[0].full_name if p.modules else f"C:\\Windows\\System32\\{p.name}"
        pf: dict[str, int | bytes] = {"Length": size_of("_RTL_USER_PROCESS_PARAMETERS"),
                                      "MaximumLength": size_of("_RTL_USER_PROCESS_PARAMETERS")}
        pf.update(unicode_fields("ImagePathName", p.heap, exe))
        pf.update(unicode_fields("CommandLine", p.heap, f'"{exe}"'))
        put_fields(p.space, "_RTL_USER_PROCESS_PARAMETERS", params, pf)
        put_fields(p.space, "_PEB", p.peb, {
            "ImageBaseAddress": p.modules[0].base if p.modules else 0, "Ldr": ldr,
            "ProcessParameters": params, "ProcessImagesHotPatched": int(p.hotpatched),
            "OSMajorVersion": 10, "OSMinorVersion": 0, "OSBuildNumber": self.build,
            "SessionId": 0 if p.pid < 500 else 1})
        entries = [self._write_ldr(p, m) for m in p.modules]
        put_fields(p.space, "_PEB_LDR_DATA", ldr, {"Length": size_of("_PEB_LDR_DATA"),
                                                   "Initialized": 1})
        link_list(p.space, ldr + 0x10, [e for e in entries])
        link_list(p.space, ldr + 0x20, [e + 0x10 for e in entries])
        link_list(p.space, ldr + 0x30, [e + 0x20 for e in entries[1:]])
        # the heap VAD covers whatever the process heap grew to
        end = (p.heap._next + PAGE - 1) & ~(PAGE - 1)
        p.vads.append(Vad(p.heap.base, end, PROT_READWRITE, True,
                          commit=(end - p.heap.base) // PAGE))

    def _write_ldr(self, p: Process, m: LdrEntry) -> int:
        assert p.heap is not None
        e = p.heap.alloc(size_of("_LDR_DATA_TABLE_ENTRY"))
        base_name = m.full_name.rsplit("\\", 1)[-1]
        f: dict[str, int | bytes] = {
            "DllBase": m.base, "EntryPoint": m.entry_point, "SizeOfImage": m.size,
            "Flags": 0x000CC2CC if m is not p.modules[0] else 0x0004A2CC,
            "ObsoleteLoadCount": 0xFFFF, "TimeDateStamp": m.timestamp, "OriginalBase": m.base,
            "LoadTime.QuadPart": filetime(m.load_time or p.create_time),
            "LoadReason": m.load_reason, "ReferenceCount": 1, "SigningLevel": 12,
            "CheckSum": m.checksum, "ActivePatchImageBase": m.active_patch_base,
            "HotPatchState": m.hotpatch_state,
        }
        f.update(unicode_fields("FullDllName", p.heap, m.full_name))
        f.update(unicode_fields("BaseDllName", p.heap, base_name))
        put_fields(p.space, "_LDR_DATA_TABLE_ENTRY", e, f)
        return e

    def _write_kldr(self, d: LdrEntry) -> int:
        e = self.pool.alloc(size_of("_KLDR_DATA_TABLE_ENTRY"), tag=b"MmLd")
        f: dict[str, int | bytes] = {
            "DllBase": d.base, "EntryPoint": d.entry_point, "SizeOfImage": d.size,
            "Flags": 0x49104000, "LoadCount": 1, "CheckSum": d.checksum,
            "TimeDateStamp": d.timestamp, "SizeOfImageNotRounded": d.size}
        f.update(unicode_fields("FullDllName", self.pool, d.full_name))
        f.update(unicode_fields("BaseDllName", self.pool, d.full_name.rsplit("\\", 1)[-1]))
        put_fields(self.kernel, "_KLDR_DATA_TABLE_ENTRY", e, f)
        return e

    def _write_vads(self, p: Process) -> tuple[int, int]:
        vads = sorted(p.vads, key=lambda v: v.start)
        nodes = [self._write_vad(p, v) for v in vads]

        def build(lo: int, hi: int, parent: int) -> int:
            if lo >= hi:
                return 0
            mid = (lo + hi) // 2
            node = nodes[mid]
            left = build(lo, mid, node)
            right = build(mid + 1, hi, node)
            put_fields(self.kernel, "_RTL_BALANCED_NODE", node,
                       {"Left": left, "Right": right, "ParentValue": canonical(parent) if parent else 0})
            return node

        return build(0, len(nodes), 0), len(nodes)

    def _write_vad(self, p: Process, v: Vad) -> int:
        image = v.vad_type == VAD_IMAGE
        type_name = "_MMVAD" if image else "_MMVAD_SHORT"
        node = self.pool.alloc(size_of(type_name), tag=b"Vad " if image else b"VadS")
        pre = "Core." if image else ""
        start_vpn, end_vpn = v.start >> 12, (v.end >> 12) - 1
        f: dict[str, int | bytes] = {
            pre + "StartingVpn": start_vpn & 0xFFFFFFFF, pre + "EndingVpn": end_vpn & 0xFFFFFFFF,
            pre + "StartingVpnHigh": start_vpn >> 32, pre + "EndingVpnHigh": end_vpn >> 32,
            pre + "u.VadFlags.VadType": v.vad_type, pre + "u.VadFlags.Protection": v.protection,
            pre + "u.VadFlags.PrivateMemory": int(v.private),
            pre + "u1.VadFlags1.CommitCharge": v.commit, pre + "ReferenceCount": 1}
        if image:
            fobj = self.pool.alloc(size_of("_FILE_OBJECT"), tag=b"File")
            ff: dict[str, int | bytes] = {"Type": 5, "Size": size_of("_FILE_OBJECT"),
                                          "ReadAccess": 1, "SharedRead": 1, "SharedDelete": 1}
            ff.update(unicode_fields("FileName", self.pool, v.file_name))
            put_fields(self.kernel, "_FILE_OBJECT", fobj, ff)
            ca = self.pool.alloc(size_of("_CONTROL_AREA"), tag=b"MmCa")
            seg = self.pool.alloc(size_of("_SEGMENT"), tag=b"MmSt")
            ptes = (v.end - v.start) // PAGE
            put_fields(self.kernel, "_SEGMENT", seg, {"ControlArea": ca, "TotalNumberOfPtes": ptes,
                                                      "SizeOfSegment": ptes * PAGE})
            put_fields(self.kernel, "_CONTROL_AREA", ca, {
                "Segment": seg, "NumberOfSectionReferences": 1, "NumberOfMappedViews": 1,
                "NumberOfUserReferences": 1, "LongFlags": 0x20 | 0x80,  # Image | File
                "FilePointer.Value": canonical(fobj) | 0x7})
            sub = self.pool.alloc(size_of("_SUBSECTION"), tag=b"MmSb")
            put_fields(self.kernel, "_SUBSECTION", sub, {"ControlArea": ca,
                                                         "PtesInSubsection": ptes})
            f.update({"Subsection": sub, "VadsProcess": p.eprocess | 1, "FileObject": fobj})
        put_fields(self.kernel, type_name, node, f)
        return node


def nt_path(dos_path: str) -> str:
    """C:\\Windows\\... → \\Windows\\... as FILE_OBJECT.FileName holds it (no device part)."""
    return dos_path[2:] if len(dos_path) > 2 and dos_path[1] == ":" else dos_path
