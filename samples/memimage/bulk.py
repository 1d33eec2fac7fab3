"""A machine at real size for benchmarks: many processes, thousands of modules, full memory.

The scenario's plants give the hotpatch cases; this adds what a busy 24H2 machine also holds:
- a library of system DLLs (real System32 names) mapped at one base in every process that
  loads them, their pages shared between processes as prototype PTEs share them;
- per process, committed private heap segments (VadS, read-write, 64 KiB to 1 MiB, so the VAD
  count grows with memory as on a real machine), every 40th one executable code as a JIT
  leaves it (what malfind looks at);
- the frames no process maps, filled too: a real dump's free and standby lists hold old data.
Page content is generated, never stored: a frame is a template (code-, heap- or string-like,
built once from a fixed seed) stamped with its frame number, so every page differs and the
generator needs no more memory for a 4 GiB image than for a 16 MiB one. Deterministic.
"""
from __future__ import annotations

import random
import struct

from memimage.paging import PAGE
from memimage.records import PROT_EXECUTE_READWRITE, PROT_READWRITE, LdrEntry, Process, Vad

LIBRARY_BASE = 0x00007FFA_1000_0000  # below the PE plan's images (0x7FFB1234...)
LIBRARY_STRIDE = 0x0100_0000
FILL_BASE = 0x0000_0200_0000_0000  # per-process heap segments, far above the sample heaps
FILL_STRIDE = 0x0000_0001_0000_0000
SEGMENT_PAGES = (16, 32, 64, 256)  # heap segments of 64 KiB to 1 MiB, a VAD each, in turn
JIT_EVERY = 40  # every 40th segment is private read-write-execute code, as a JIT leaves it
TEMPLATES = 509  # prime: frame numbers walk through every template
SYS32 = "C:\\Windows\\System32\\"

DLL_NAMES = (
    "user32.dll advapi32.dll gdi32.dll gdi32full.dll msvcrt.dll ucrtbase.dll combase.dll "
    "rpcrt4.dll sechost.dll oleaut32.dll ole32.dll shell32.dll shlwapi.dll shcore.dll "
    "win32u.dll bcrypt.dll bcryptprimitives.dll crypt32.dll cfgmgr32.dll windows.storage.dll "
    "kernelbase.dll msvcp_win.dll imm32.dll ws2_32.dll powrprof.dll profapi.dll umpdc.dll "
    "wintrust.dll msasn1.dll cryptbase.dll sspicli.dll userenv.dll dnsapi.dll iphlpapi.dll "
    "nsi.dll winhttp.dll wininet.dll urlmon.dll iertutil.dll netutils.dll srvcli.dll "
    "wkscli.dll samcli.dll logoncli.dll dpapi.dll ntmarta.dll uxtheme.dll dwmapi.dll "
    "comctl32.dll comdlg32.dll propsys.dll clbcatq.dll wldp.dll kernel.appcore.dll "
    "windows.ui.dll twinapi.appcore.dll coremessaging.dll textinputframework.dll "
    "coreuicomponents.dll wintypes.dll ntasn1.dll ncrypt.dll gpapi.dll winsta.dll "
    "msctf.dll dxgi.dll d3d11.dll d3d12.dll dcomp.dll directmanipulation.dll mswsock.dll "
    "rsaenh.dll cryptsp.dll dbghelp.dll dbgcore.dll version.dll winmm.dll secur32.dll "
    "schannel.dll mskeyprotect.dll ncryptsslp.dll webio.dll fwpuclnt.dll rasadhlp.dll "
    "taskschd.dll xmllite.dll edputil.dll sxs.dll apphelp.dll setupapi.dll devobj.dll "
    "wevtapi.dll wer.dll faultrep.dll mpr.dll netapi32.dll dsreg.dll tokenbinding.dll"
).split()

CODE_BITS = [bytes.fromhex(h) for h in (
    "4883ec28", "4883c428c3", "488bc4", "48895c2408", "4889742410", "57", "4156", "4157",
    "4c8bd1", "b8", "0f05c3", "e8", "e9", "ff15", "488b05", "4885c0", "7405", "7510", "33c0",
    "8bc1", "cc", "90", "c3", "488d0d", "4c8d05", "ff25", "0f1f440000", "66900f1f00")]
WORDS = ("Software\\Microsoft\\Windows\\CurrentVersion C:\\Windows\\System32 explorer "
         "ServiceMain Microsoft-Windows-Kernel HKEY_LOCAL_MACHINE svchost -k netsvcs "
         "https://go.microsoft.com WinSxS amd64_microsoft-windows kernel32 Update Session "
         "Orchestrator ProgramData AppData Local Temp").split()


def _templates(kind: str) -> list[bytes]:
    """Page templates of one kind, from a fixed seed (identical on every run)."""
    rng = random.Random(f"hpforensics-bulk-{kind}")
    out = []
    for _ in range(TEMPLATES):
        page = bytearray()
        while len(page) < PAGE:
            r = rng.random()
            if kind == "code":
                page += rng.choice(CODE_BITS)
                if r < 0.3:
                    page += struct.pack("<i", rng.randrange(-0x8000, 0x8000))
            elif r < 0.35:  # pointers into heaps and images
                page += struct.pack("<Q", rng.choice((0x1F3C0000000, 0x7FFA10000000, FILL_BASE))
                                    + rng.randrange(0, 1 << 24) * 8)
            elif r < 0.55:
                page += rng.choice(WORDS).encode("utf-16-le") + b"\0\0"
            elif r < 0.75:
                page += bytes(rng.choice((8, 16, 32, 64, 256)))
            else:
                page += rng.randbytes(rng.choice((4, 8, 16, 24)))
        out.append(bytes(page[:PAGE]))
    return out


class ContentFrames:
    """Frames whose content is generated from their number when the image is saved."""

    def __init__(self) -> None:
        self.kinds = {k: _templates(k) for k in ("code", "heap")}

    def page(self, kind: str, frame: int) -> bytes:
        n = frame // PAGE
        tpl = self.kinds[kind][n % TEMPLATES]
        return struct.pack("<QQ", n, n * 0x9E3779B97F4A7C15 & (1 << 64) - 1) + tpl[16:]


def library_dll(index: int, name: str) -> tuple[int, int, int]:
    """(base, SizeOfImage, resident pages) of the library DLL `index`: 64 KiB to 2 MiB."""
    rng = random.Random(f"hpforensics-bulk-dll-{name}")
    pages = rng.randrange(16, 512)
    return LIBRARY_BASE + index * LIBRARY_STRIDE, pages * PAGE, pages


class BulkMachine:
    """Adds library DLLs and filled heaps to the scenario's processes."""

    def __init__(self, builder, modules: int) -> None:
        from memimage.images import stub_image
        self.b, self.modules = builder, modules
        self._stub = stub_image
        self._library: dict[str, tuple[int, int, list[int], bytes]] = {}
        self.module_count = 0

    def _dll(self, index: int, name: str) -> tuple[int, int, list[int], bytes]:
        """The DLL's frames, made once: its header and code stub pages, then content pages."""
        if name not in self._library:
            base, size, pages = library_dll(index, name)
            ts = 0x60000000 + index * 0x1003
            head = self._stub(name, base, size, ts)[:2 * PAGE]
            frames = [self.b.shared_frame(head[o:o + PAGE]) for o in (0, PAGE)]
            code = (pages - 2) * 2 // 3
            start = self.b.mem.alloc_generated(code, "code")
            frames += [start + i * PAGE for i in range(code)]
            start = self.b.mem.alloc_generated(pages - 2 - code, "heap")
            frames += [start + i * PAGE for i in range(pages - 2 - code)]
            self._library[name] = (base, size, frames, head)
        return self._library[name]

    def load_modules(self, p: Process) -> None:
        """`modules` DLLs from the library, a different choice per process."""
        rng = random.Random(f"hpforensics-bulk-mods-{p.pid}")
        for index in sorted(rng.sample(range(len(DLL_NAMES)), min(self.modules, len(DLL_NAMES)))):
            name = DLL_NAMES[index]
            base, size, frames, _ = self._dll(index, name)
            for i, frame in enumerate(frames):
                p.space.map(base + i * PAGE, frame, user=True, writable=False, executable=True)
            ts = 0x60000000 + index * 0x1003
            self.b.map_user_image(p, base, b"", SYS32 + name,
                                  LdrEntry(base, size, SYS32 + name, base + 0x1000, ts, 0, 4),
                                  size=size)
            self.module_count += 1

    def fill_heaps(self, processes: list[Process], reserve: int) -> int:
        """Committed heap segments, round-robin over `processes`, until `reserve` bytes of
        physical memory are left (for page tables, kernel objects and free frames)."""
        mem, user = self.b.mem, [p for p in processes if p.pid != 4]
        if not user:
            return 0
        pages, seg = 0, 0
        top = {p.pid: FILL_BASE + i * FILL_STRIDE for i, p in enumerate(user)}
        while mem.size - mem.used > reserve + max(SEGMENT_PAGES) * PAGE:
            p = user[seg % len(user)]
            count = SEGMENT_PAGES[seg // len(user) % len(SEGMENT_PAGES)]
            jit = seg % JIT_EVERY == JIT_EVERY - 1
            base = top[p.pid]
            top[p.pid] += (count + 16) * PAGE  # a reserved gap between segments
            start = mem.alloc_generated(count, "code" if jit else "heap")
            for i in range(count):
                p.space.map(base + i * PAGE, start + i * PAGE, user=True, executable=jit)
            p.vads.append(Vad(base, base + count * PAGE,
                              PROT_EXECUTE_READWRITE if jit else PROT_READWRITE, True,
                              commit=count))
            pages += count
            seg += 1
        return pages

