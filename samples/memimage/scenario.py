"""What the sample machine holds: processes, images, hotpatches, hooks, paged-out pages.

Memory contents come from the PE helper's scenarios (samples/pe/plan.json + mem/*.bin): the
same hpbase.dll at 0x7FFB12340000 with its HPAT at +0x5000 in every process, patched or not.
Each process below puts one scenario in a loader/VAD context; the plan this returns says, per
process, which changes to expect (the PE plan's, adjusted for pages planted paged out) and what
the hotpatch-image records should conclude.
"""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from memimage.builder import KERNEL_BASE, KERNEL_SIZE, WindowsImageBuilder
from memimage.records import PROT_EXECUTE_READWRITE, LdrEntry, Process
from memimage import pemini
from memimage.images import PeSamples, Region, exe_stub, stub_image

GUID = uuid.UUID("5b0a3c1e-9d47-4e2a-8f61-24a0c0de2610")
AGE = 1
SIZE = 16 << 20
FILL_RESERVE = 64 << 20  # left after the heaps: page tables, kernel objects, then free frames
COPY_PID_STRIDE = 10000  # PIDs of further copies of the plants (multiples of 4)
T0 = 1_778_745_600  # 2026-05-14 08:00:00 UTC, after the May 2026 hotpatch
SYS32 = "C:\\Windows\\System32\\"
WINSXS = ("C:\\Windows\\WinSxS\\amd64_hpforensics-sample-hpbase-hotpatch_31bf3856ad364e35_"
          "10.0.26100.4061_none_5f0c2a1b3d4e6f70\\")
REASON_STATIC, REASON_DYNAMIC, REASON_PATCH = 0, 4, 9
STATE_BASE, STATE_APPLIED_FORWARD = 0, 3


@dataclass(frozen=True)
class Plant:
    pid: int
    name: str
    ppid: int
    offset: int  # seconds after T0 the process was created
    scenario: str  # PE-plan scenario whose memory regions the process maps
    label: str
    note: str
    active: str = ""  # patch image the loader records as applied to hpbase.dll ("" = none)
    paged: dict = field(default_factory=dict)  # module -> page offsets planted paged out
    listed: bool = True  # False: images in VADs only, unlinked from the loader lists
    patch_reason: int = REASON_PATCH  # LoadReason of patch images
    unapplied: str = ""  # map this patch file beside the base without applying it
    images: tuple = ()  # expected records: (base, patch, status, flagged, patched, total)
    # "code": code in the extension pages; "slot": an unused HPAT slot repointed
    ext_attack: str = ""


APPLIED = "applied"
PLANTS = (
    Plant(604, "winlogon.exe", 388, 10, "clean", "clean", "hpbase.dll loaded, never patched"),
    Plant(1024, "svchost.exe", 604, 20, "hp1", "hp1", "hpbase.dll hotpatched by hpbase_hp1.dll",
          active="hpbase_hp1.dll",
          images=(("hpbase.dll", "hpbase_hp1.dll", APPLIED, False, 2, 2),)),
    Plant(1100, "svchost.exe", 604, 21, "hp2", "hp2",
          "hp1 then hp2 applied; hp1 stays mapped, superseded", active="hpbase_hp2.dll",
          images=(("hpbase.dll", "hpbase_hp1.dll", "orphaned", False, 0, 2),
                  ("hpbase.dll", "hpbase_hp2.dll", APPLIED, False, 3, 3))),
    Plant(2260, "explorer.exe", 1024, 40, "hp1", "hp1",
          "hp1 applied; hpbase.dll page 0x2000 (.rdata) and hp1 page 0x4000 (.reloc) paged out",
          active="hpbase_hp1.dll", paged={"hpbase.dll": (0x2000,), "hpbase_hp1.dll": (0x4000,)},
          images=(("hpbase.dll", "hpbase_hp1.dll", APPLIED, False, 2, 2),)),
    Plant(3128, "notepad.exe", 2260, 300, "attacked", "attacked",
          "hp1 plus inline hook, fake redirect, forged patch, IAT hook", active="hpbase_hp1.dll",
          images=(("hpbase.dll", "hpbase_hp1.dll", APPLIED, False, 2, 2),
                  ("", "forged_hp.dll", "mapped but base mismatch", True, 0, 0))),
    Plant(4404, "rundll32.exe", 2260, 420, "clean", "clean",
          "hpbase.dll mapped (image VAD) but unlinked from the loader lists", listed=False),
    Plant(5012, "taskhostw.exe", 604, 60, "clean", "claimed",
          "loader says hp1 AppliedForward; code is the clean base", active="hpbase_hp1.dll",
          unapplied="hpbase_hp1.dll",
          images=(("hpbase.dll", "hpbase_hp1.dll", "loader claims patch, code does not show it",
                   True, 0, 2),)),
    Plant(6120, "spoolsv.exe", 604, 70, "hp1", "unclaimed",
          "hp1 redirects in code; loader records no hotpatch", patch_reason=REASON_DYNAMIC,
          images=(("hpbase.dll", "hpbase_hp1.dll", "code redirected, loader claims none",
                   True, 2, 2),)),
    Plant(7208, "dllhost.exe", 604, 80, "clean", "ext-code",
          "clean hpbase.dll; attacker code (mov rax, imm64; jmp rax) in its extension pages",
          ext_attack="code"),
    Plant(7316, "sihost.exe", 604, 90, "hp1", "ext-slot",
          "hp1 applied; an HPAT stub no redirect uses, its slot aimed at a private buffer",
          active="hpbase_hp1.dll", ext_attack="slot",
          images=(("hpbase.dll", "hpbase_hp1.dll", APPLIED, False, 2, 2),)),
)



def _hx(v: int) -> str:
    return f"{v:#x}"


# --- 24H2 extension pages (docs/hotpatch-format.md, "Extension pages") ----------------------
# ntdll's SCPCFGES section in the layout ynwarcs describes: six DWORD offsets (dispatch,
# dispatch-ES, validate, validate-ES, invalid-call handler, function table), then functions
# that begin `mov r11, 0x0123456789ABCDEF` (49 BB imm64): the kernel replaces the immediates
# of the first five in the copy it maps after each hotpatchable image.
SCP_PLACEHOLDER = 0x0123456789ABCDEF
SCP_OFFSETS = (0x40, 0xC0, 0x140, 0x1C0, 0x240, 0x2A4)
SCP_BITMAP_VIEW = 0x7DF5_0000_0000  # the process's CFG bitmap view (reserved, not an image)
SCP_PAGE_SIZE = 0x1000
HPAT_PAGES = 0x2000  # stub page + pointer page after the SCP page (samples/build_pe.py)
EXT_SIZE = SCP_PAGE_SIZE + HPAT_PAGES
SCP_RVA = 0x2000  # where the stub ntdll carries its SCPCFGES section
ATTACK_SHELLCODE = 0x0000_01D0_4000_0000  # a private RWX buffer of the extension attacks


def scp_section() -> bytes:
    sec = bytearray(0x2B0)
    struct.pack_into("<6I", sec, 0, *SCP_OFFSETS)
    body = (bytes.fromhex("49BB") + struct.pack("<Q", SCP_PLACEHOLDER)
            + bytes.fromhex("4C8BD049C1EA094D8B1CD3") + bytes.fromhex("FFE0"))
    for off in SCP_OFFSETS[:4]:
        sec[off : off + len(body)] = body
    handler = bytes.fromhex("49BB") + struct.pack("<Q", SCP_PLACEHOLDER) + bytes.fromhex("41FFE3")
    sec[0x240 : 0x240 + len(handler)] = handler
    struct.pack_into("<3I", sec, 0x2A4, 0, 0x280, 0x298)
    return bytes(sec)


def scp_page(ntdll_base: int) -> bytes:
    """The kernel's fixed-up copy: the bitmap view in the four CFG functions, the loader's
    invalid-call handler (in ntdll's .text) in the fifth."""
    page = bytearray(SCP_PAGE_SIZE)
    sec = scp_section()
    page[: len(sec)] = sec
    for off in SCP_OFFSETS[:4]:
        struct.pack_into("<Q", page, off + 2, SCP_BITMAP_VIEW)
    struct.pack_into("<Q", page, SCP_OFFSETS[4] + 2, ntdll_base + 0x1010)
    return bytes(page)


def ntdll_image(base: int, size: int, timestamp: int) -> bytes:
    text = bytes.fromhex("4883ec28") + b"\x33\xc9" + bytes.fromhex("4883c428c3") + b"ntdll.dll"
    return pemini.build_pe(image_base=base, timestamp=timestamp, dll=True, subsystem=3,
                           sections=[pemini.Section(b".text", text, pemini.SCN_CODE),
                                     pemini.Section(b"SCPCFGES", scp_section(), pemini.SCN_CODE),
                                     pemini.Section(b".data", b"", pemini.SCN_DATA,
                                                    size=size - 0x3000)])


EXT_CODE = bytes.fromhex("48B8") + struct.pack("<Q", ATTACK_SHELLCODE) + bytes.fromhex("FFE09090C3")
EXT_CODE_AT = SCP_PAGE_SIZE + 0x40  # in the reserved HPAT stub page
EXT_STUB_INDEX = 300
EXT_SLOT_AT = SCP_PAGE_SIZE + 0x1000 + EXT_STUB_INDEX * 8


class Scenario:
    def __init__(self, pe_dir: Path, copies: int = 1, size: int = SIZE, modules: int = 0,
                 fill: bool = False) -> None:
        self.copies, self.fill = copies, fill
        self.b = WindowsImageBuilder(size, GUID, AGE, now=T0 + 7200)
        self.bulk = None
        if modules or fill:  # a machine at real size (bench/dump.py); off for the sample
            from memimage.bulk import BulkMachine, ContentFrames
            self.b.mem.content = ContentFrames()
            self.bulk = BulkMachine(self.b, modules)
        self.pe = PeSamples(pe_dir)
        self.plan: dict = {"generator": "samples/build_memimage.py", "processes": [],
                           "kernel": {}, "expected_findings": [], "expected_images": []}

    # -- helpers --------------------------------------------------------------------------
    def system_dlls(self, p: Process) -> None:
        for name in ("ntdll.dll", "kernel32.dll"):
            base, size = self.pe.import_target(name)
            ts = 0x5A3C0000 + len(name)
            ldr = LdrEntry(base, size, SYS32 + name, base + 0x1000, ts, 0, REASON_STATIC)
            if name == "ntdll.dll":
                self.map_with_extension(p, base, size, ntdll_image(base, size, ts)[:0x3000],
                                        scp_page(base), SYS32 + name, ldr)
                continue
            img = stub_image(name, base, size, ts)
            self.b.map_user_image(p, base, img[:0x2000], SYS32 + name, ldr, size=size)

    def map_with_extension(self, p: Process, base: int, size: int, image: bytes, ext: bytes,
                           path: str, ldr: LdrEntry | None, paged_out: tuple = ()) -> None:
        """An image VAD that runs past SizeOfImage: the 24H2 extension pages. Zero pages of
        the extension stay reserved, not resident (decommitted, as the kernel leaves them)."""
        self.b.map_image_pages(p.space, base, image, user=True, paged_out=paged_out)
        ext_base = base + ((size + 0xFFF) & ~0xFFF)
        for off in range(0, len(ext), 0x1000):
            page = ext[off : off + 0x1000]
            if any(page):
                self.b.map_image_pages(p.space, ext_base + off, page, user=True)
        self.b.map_user_image(p, base, b"", path, ldr,
                              size=(ext_base - base) + ((len(ext) + 0xFFF) & ~0xFFF))

    def process(self, pid: int, name: str, ppid: int, offset: int) -> Process:
        p = self.b.create_process(pid, name, ppid, T0 + offset)
        exe = exe_stub(name, 0x00007FF6A0000000 + (pid << 16))
        self.b.map_user_image(p, exe.base, exe.data, SYS32 + name,
                              LdrEntry(exe.base, exe.size, SYS32 + name, exe.base + 0x1000,
                                       exe.timestamp, exe.checksum, REASON_STATIC))
        self.system_dlls(p)
        if self.bulk is not None:
            self.bulk.load_modules(p)
        return p

    def regions(self, p: Process, regions: list[Region], *, listed: set[str] | None = None,
                state: int = STATE_BASE, active: int = 0, paged_out: dict[str, tuple] = {},
                patch_reason: int = REASON_PATCH, ext_edit=None) -> None:
        hpats = {r.base: r for r in regions if r.kind == "hpat"}
        ntdll_base, _ = self.pe.import_target("ntdll.dll")
        for r in regions:
            if r.kind == "hpat":
                continue  # mapped with its image, inside the image VAD
            if r.kind == "private":
                self.b.map_private(p, r.base, r.data, PROT_EXECUTE_READWRITE)
                continue
            # Windows loads patch images from a WinSxS component folder (Detours issue 367)
            path = (WINSXS + r.module) if r.is_patch_image else SYS32 + r.module
            ldr = None
            if listed is None or r.module in listed:
                ldr = LdrEntry(r.base, r.size, path, r.base + r.entry_rva, r.timestamp,
                               r.checksum, patch_reason if r.is_patch_image else REASON_DYNAMIC,
                               0 if r.is_patch_image else state,
                               0 if r.is_patch_image else active, T0 + 3600)
            if r.is_patch_image:
                self.b.map_user_image(p, r.base, r.data, path, ldr, paged_out.get(r.module, ()))
                continue
            # A hotpatchable base image: SCP CFG page, then the HPAT pages (reserved when empty).
            hpat = hpats.get(r.base + r.size + SCP_PAGE_SIZE)
            ext = bytearray(scp_page(ntdll_base) + (hpat.data if hpat else bytes(HPAT_PAGES)))
            if ext_edit is not None:
                ext_edit(r, ext)
            self.map_with_extension(p, r.base, r.size, r.data, bytes(ext), path, ldr,
                                    paged_out.get(r.module, ()))

    def expect(self, p_pid: int | None, process: str, scenario: str,
               paged: dict[str, tuple] = {}) -> None:
        """The PE plan's non-loader changes, with pages planted paged out turned unavailable."""
        regions = {r["module"]: r for r in self.pe.scenarios[scenario]["regions"]
                   if r["kind"] == "image"}
        for c in self.pe.changes(scenario):
            if c["verdict"] == "loader":
                continue
            rva = int(c["rva"], 16)
            if rva // 0x1000 * 0x1000 in paged.get(c["module"], ()):
                continue
            self.plan["expected_findings"].append({
                "pid": p_pid, "process": process, "module": c["module"],
                "address": c["address"], "rva": c["rva"], "size": c["size"],
                "verdict": c["verdict"], "kind": c["kind"],
                "patch_image": c.get("patch_image", ""), "sequence": c.get("sequence")})
        if p_pid is not None:  # user space: the HPAT lies in the image's extension pages
            bad = {(c["module"], c.get("function_rva")) for c in self.pe.changes(scenario)
                   if c["kind"] == "hotpatch_redirect" and c["verdict"] == "unexplained"}
            for h in self.pe.scenarios[scenario].get("hpat", []):
                base = int(regions[h["module"]]["base"], 16)
                for e in h["entries"]:
                    if (h["module"], e["function_rva"]) in bad:
                        slot = int(e["slot"], 16)
                        self.plan["expected_findings"].append({
                            "pid": p_pid, "process": process, "module": h["module"],
                            "address": e["slot"], "rva": _hx(slot - base), "size": 8,
                            "verdict": "unexplained", "kind": "extension_hpat_slot",
                            "patch_image": "", "sequence": None})
        for module, pages in paged.items():
            base = int(regions[module]["base"], 16)
            for off in pages:
                self.plan["expected_findings"].append({
                    "pid": p_pid, "process": process, "module": module,
                    "address": _hx(base + off), "rva": _hx(off), "size": 0x1000,
                    "verdict": "unavailable", "kind": "paged_out", "patch_image": "",
                    "sequence": None})

    def ext_attack(self, p: Process, t: "Plant"):
        """An edit of hpbase.dll's extension pages, and the finding it must give."""
        self.b.map_private(p, ATTACK_SHELLCODE, bytes.fromhex("4831C0C3").ljust(0x1000, b"\0"),
                           PROT_EXECUTE_READWRITE)

        def edit(r: Region, ext: bytearray) -> None:
            if r.module != "hpbase.dll":
                return
            if t.ext_attack == "code":
                at, size = EXT_CODE_AT, len(EXT_CODE)
                ext[at : at + size] = EXT_CODE
                kind = "extension_code"
            else:
                stub = EXT_SLOT_AT - 0x1000
                ext[stub : stub + 8] = bytes.fromhex("FF25FA0F0000CCCC")
                ext[EXT_SLOT_AT : EXT_SLOT_AT + 8] = struct.pack("<Q", ATTACK_SHELLCODE)
                at, size, kind = EXT_SLOT_AT, 8, "extension_hpat_slot"
            rva = r.size + at
            self.plan["expected_findings"].append({
                "pid": p.pid, "process": p.name, "module": r.module, "address": _hx(r.base + rva),
                "rva": _hx(rva), "size": size, "verdict": "unexplained", "kind": kind,
                "patch_image": "", "sequence": None})
        return edit

    def expect_image(self, pid: int | None, base_module: str, patch: str, status: str,
                     flagged: bool, patched: int, total: int) -> None:
        self.plan["expected_images"].append({
            "pid": pid, "base_module": base_module, "patch_image": patch, "status": status,
            "flagged": flagged, "functions_patched": patched, "functions_total": total})

    def record(self, p: Process, scenario: str, note: str) -> None:
        self.plan["processes"].append({
            "pid": p.pid, "name": p.name, "ppid": p.ppid, "scenario": scenario, "note": note,
            "peb_images_hotpatched": p.hotpatched,
            "loader_modules": [m.full_name for m in p.modules],
            "image_vads": sorted(v.file_name for v in p.vads if v.file_name)})

    def plant(self, t: "Plant") -> None:
        """One user process holding one PE-plan scenario in a loader/VAD context."""
        p = self.process(t.pid, t.name, t.ppid, t.offset)
        p.hotpatched = bool(t.active)
        regions = self.pe.regions(t.scenario)
        if t.unapplied:  # the patch file as the loader maps it, nothing applied
            hp_base = next(r.base for r in self.pe.regions("hp1") if r.module == t.unapplied)
            regions = [r for r in regions if r.kind == "image"]
            regions.append(self.pe.file_region(t.unapplied, hp_base))
        active = next((r.base for r in regions if r.module == t.active), 0)
        self.regions(p, regions, listed=None if t.listed else set(),
                     state=STATE_APPLIED_FORWARD if t.active else STATE_BASE, active=active,
                     paged_out=t.paged, patch_reason=t.patch_reason,
                     ext_edit=self.ext_attack(p, t) if t.ext_attack else None)
        self.expect(p.pid, p.name, t.scenario, t.paged)
        for base, patch, status, flagged, done, total in t.images:
            self.expect_image(p.pid, base, patch, status, flagged, done, total)
        self.record(p, t.label, t.note)

    # -- the machine ----------------------------------------------------------------------
    def build(self) -> tuple[WindowsImageBuilder, dict]:
        b = self.b
        kimg = b.kernel_image
        b.add_driver(LdrEntry(KERNEL_BASE, KERNEL_SIZE, "\\SystemRoot\\system32\\ntoskrnl.exe",
                              KERNEL_BASE + 0x1000, 0x66F2B1A9, 0), None)
        del kimg
        b.create_process(4, "System", 0, T0, system=True)
        self.plan["processes"].append({"pid": 4, "name": "System", "ppid": 0,
                                       "scenario": "kernel", "note": "kernel space"})
        for r in self.pe.regions("kernel_hp1"):
            if r.kind == "hpat":
                b.map_kernel_private(r.base, r.data)
                continue
            b.add_driver(LdrEntry(r.base, r.size, "\\SystemRoot\\System32\\drivers\\" + r.module,
                                  r.base + r.entry_rva, r.timestamp, r.checksum), r.data)
        self.expect(None, "kernel", "kernel_hp1")
        self.expect_image(None, "hpkern.sys", "hpkern_hp1.sys", "applied", False, 2, 2)
        self.plan["kernel"] = {"modules": [d.full_name for d in b.drivers]}

        for pid, name, ppid, off in ((388, "smss.exe", 4, 5), (512, "csrss.exe", 388, 9)):
            self.record(self.process(pid, name, ppid, off), "none", "no sample DLL")
        for copy in range(self.copies):  # copies > 1: a bigger machine for benchmarks
            for plant in PLANTS:
                self.plant(replace(plant, pid=plant.pid + COPY_PID_STRIDE * copy,
                                   offset=plant.offset + copy))
        if self.fill:
            self.bulk.fill_heaps(b.processes, reserve=min(FILL_RESERVE, b.mem.size // 8))
        return b, self.plan


def build_scenario(pe_dir: Path, copies: int = 1, size: int = SIZE, modules: int = 0,
                   fill: bool = False) -> tuple[WindowsImageBuilder, dict]:
    return Scenario(pe_dir, copies, size, modules, fill).build()
