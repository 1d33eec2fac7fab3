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

from memimage import isf, pemini
from memimage.paging import PAGE, AddressSpace, PhysicalMemory, canonical
from memimage.records import (PROT_EXECUTE_READ, PROT_EXECUTE_READWRITE, PROT_EXECUTE_WRITECOPY,
                              PROT_READONLY, PROT_READWRITE, VAD_IMAGE, LdrEntry, Process, Vad,
                              filetime, nt_path)
from memimage.winobj import Heap, link_list, put_fields
from memimage.writers import ObjectWriter

KERNEL_DTB = 0x1AD000
LOW_STUB = 0x1000
KUSER_KERNEL = 0xFFFFF78000000000
KUSER_USER = 0x7FFE0000
POOL_BASE = 0xFFFFA50C40000000
KERNEL_BASE = 0xFFFFF80610000000
KERNEL_SIZE = 0x1046000
USER_HEAP = 0x000001F3C0000000
PEB_BASE = 0x000000E1F0000000


class WindowsImageBuilder(ObjectWriter):
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
        put_fields(self.kernel, "_DBGKD_GET_VERSION64",
                   KERNEL_BASE + self.symbols["KdVersionBlock"], {
            "MajorVersion": 0xF, "MinorVersion": self.build, "ProtocolVersion": 6,
            "KdSecondaryVersion": 2, "Flags": 0x47, "MachineType": 0x8664,
            "MaxPacketType": 0x0C, "MaxStateChange": 3, "MaxManipulate": 0x33,
            "KernBase": KERNEL_BASE,
            "PsLoadedModuleList": KERNEL_BASE + self.symbols["PsLoadedModuleList"]})
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
