"""Live scanning: the backend contract, backend selection, and the one scan driver they share.

A backend (linux.py, windows.py) does the platform calls only: list processes, list
the regions and images of one process, read its memory (read-only), and say which pages the
kernel guarantees are still the original file's. Everything else — which pages to read, the
comparison, the verdicts, the summaries — is here and in `hpforensics.live`, and is tested on
Linux whatever the backend.
"""
from __future__ import annotations

import abc
import fnmatch
import logging
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple, Sequence

from hpforensics.model import ScanResult
from hpforensics.space import AddressSpace, MappedImage

if TYPE_CHECKING:
    from hpforensics.live.scan import ScanOptions

log = logging.getLogger(__name__)


class ProcessGone(Exception):
    """The process exited while (or before) it was read."""


class AccessDenied(Exception):
    """The OS refuses to let us read this process."""


class NoUserSpace(Exception):
    """A kernel thread (or a zombie): no user-space memory to scan."""


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    exe: str = ""


class Region(NamedTuple):
    """One mapping of a process as the OS reports it (a /proc maps line, a VirtualQueryEx run).

    A NamedTuple, not a frozen dataclass: a host has tens of thousands of mappings and a frozen
    dataclass's __init__ costs several times more per record."""

    start: int
    end: int
    perms: str  # "r-xp" style: read, write, execute, p(rivate)/s(hared)
    offset: int = 0  # file offset of `start`
    path: str = ""  # file or pseudo name ("[heap]", "[vdso]"); "" for anonymous memory
    dev: str = ""  # "major:minor" in hex, as /proc maps prints it; "" where unknown
    inode: int = 0
    deleted: bool = False  # the name in the map carries " (deleted)"

    @property
    def executable(self) -> bool:
        return "x" in self.perms

    @property
    def shared_anonymous(self) -> bool:
        """MAP_SHARED|MAP_ANONYMOUS memory (and SysV shm): Linux names it after the shmem
        inode behind it, "/dev/zero (deleted)" / "/SYSV<key> (deleted)", yet no file holds it."""
        return self.deleted and (self.path == "/dev/zero" or self.path.startswith("/SYSV"))

    @property
    def file_backed(self) -> bool:
        """Maps a file: an absolute POSIX path, or a Windows drive / device path."""
        p = self.path
        return (p.startswith(("/", "\\")) or (len(p) > 2 and p[1] == ":")) \
            and not self.shared_anonymous

    @property
    def size(self) -> int:
        return self.end - self.start

    def describe(self) -> str:
        """How a branch target's region is named in a finding."""
        if self.shared_anonymous:
            kind = f"shared anonymous memory ({self.path}, deleted)"
        else:
            name = self.path.rsplit("/", 1)[-1] if self.path.startswith("/") else self.path
            kind = name or "anonymous"
        return f"{kind} {self.perms} {self.start:#x}-{self.end:#x}"


@dataclass(frozen=True)
class OsPatchRecord:
    """What the OS itself says is hotpatched in a process, reported beside what the bytes show
    (Windows: loader entries' HotPatchState / ActivePatchImageBase, NtManageHotPatch)."""

    source: str
    pid: int
    module: str
    module_base: int | None
    hotpatch_state: int | None
    active_patch_base: int | None
    patch_image: str = ""
    sequence: int | None = None
    origin: str = "loader entry"  # "loader entry" or "NtManageHotPatch"


@dataclass
class ProcessSummary:
    """What one process came to: closes the report beside the per-module summaries."""

    source: str
    pid: int
    process: str
    exe: str
    status: str = "ok"  # ok / exited / access denied / error: <reason>
    modules: int = 0
    pages_total: int = 0
    pages_read: int = 0
    pages_skipped: int = 0
    pages_unavailable: int = 0
    loader: int = 0
    hotpatch: int = 0
    unexplained: int = 0
    unverified: int = 0


@dataclass
class LiveScanResult(ScanResult):
    processes: list[ProcessSummary] = field(default_factory=list)
    kernel_modules: list[str] = field(default_factory=list)  # listed only: out of reach
    os_patches: list[OsPatchRecord] = field(default_factory=list)


class LiveSpace(AddressSpace):
    """One live process: an AddressSpace plus what the driver needs from the OS."""

    exe: str = ""  # the program's own image path, as the mappings name it

    @abc.abstractmethod
    def regions(self) -> Sequence[Region]:
        """Every mapping, sorted by start (for naming branch targets and finding code)."""

    def kernel_regions(self) -> Sequence[Region]:
        """Executable mappings the kernel provides without a file ([vdso], [vsyscall])."""
        return [r for r in self.regions() if r.path.startswith("[") and r.executable]

    @abc.abstractmethod
    def image_regions(self, image: MappedImage) -> Sequence[Region]:
        """The mappings that make up `image`."""

    def read_into(self, address: int, buf: memoryview) -> list[bool]:
        """Read len(buf) bytes at `address` into `buf` (page-aligned); per page, whether it
        could be read (unreadable pages are zero-filled). Backends override it to skip a copy."""
        got = self.read(address, len(buf))
        buf[:] = got.data
        return list(got.present)

    def unchanged_pages(self, start: int, end: int) -> list[bool] | None:
        """Per page of [start, end): True when the OS guarantees the page is still the
        original file's page (shared with the page cache / the image section, or never
        faulted in), so it cannot differ. None when the OS will not say."""
        return None

    def open_file(self, region: Region) -> tuple[int | None, str]:
        """A read-only descriptor on the very file `region` maps and how it was found, or
        (None, why not). The caller closes the descriptor."""
        return None, "the backend cannot open mapped files"

    def modified_after_start(self, region: Region) -> bool:
        """True when the mapped file itself (same inode) was written after the process
        started: its page-cache pages then changed in memory and on disk alike, which no
        comparison with the file can show."""
        return False

    def still_mapped(self, region: Region) -> bool:
        """Whether `region` is still mapped as it was listed (asked before reporting a
        difference: a library unmapped and replaced mid-scan is not a modification)."""
        return True

    def mapped_size(self, region: Region) -> int | None:
        """Size of the file `region` maps, without opening it, where the OS tells."""
        return None

    def os_patch_records(self) -> list[OsPatchRecord]:
        """What the OS records about hotpatches applied in this process (none on Linux)."""
        return []

    def close(self) -> None:
        """Release handles."""

    def __enter__(self) -> "LiveSpace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveBackend(abc.ABC):
    name: str = ""

    @property
    def source(self) -> str:
        return f"live:{socket.gethostname()}"

    @abc.abstractmethod
    def processes(self) -> list[ProcessInfo]:
        """Every process visible now."""

    @abc.abstractmethod
    def open(self, proc: ProcessInfo) -> LiveSpace:
        """Open a process for reading; raises ProcessGone / AccessDenied."""

    def kernel_modules(self) -> list[str]:
        """Kernel modules, listed to say they are out of reach of a user-mode scan."""
        return []


def select_backend(platform: str | None = None) -> LiveBackend:
    """The backend for this OS, imported only when chosen (so Windows code never loads here)."""
    platform = platform or sys.platform
    if platform.startswith("linux"):
        # lazy: only this platform's backend is loaded
        from hpforensics.live.linux import LinuxBackend

        return LinuxBackend()
    if platform in ("win32", "cygwin"):
        # lazy: only this platform's backend is loaded
        from hpforensics.live.windows import WindowsBackend

        return WindowsBackend()
    # lazy: only this path uses it (kept off this module's import cost)
    from hpforensics.errors import UsageError

    raise UsageError(f"live scanning is not supported on {platform}")


def pick_processes(
    procs: Iterable[ProcessInfo], pids: Sequence[int] = (), names: Sequence[str] = ()
) -> list[ProcessInfo]:
    """Filter by --pid and --name (glob, case-insensitive, on the name or the exe's name)."""
    out = []
    for p in procs:
        if not pids and not names:
            out.append(p)
            continue
        exe_name = p.exe.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
        candidates = (p.name.lower(), exe_name.lower())
        if p.pid in pids or any(fnmatch.fnmatch(c, g.lower()) for g in names for c in candidates):
            out.append(p)
    return sorted(out, key=lambda p: p.pid)


Progress = Callable[[int, int, ProcessInfo], None]


def scan_live(
    backend: LiveBackend,
    *,
    pids: Sequence[int] = (),
    names: Sequence[str] = (),
    options: ScanOptions | None = None,
    progress: Progress | None = None,
) -> LiveScanResult:
    """Scan every chosen process; a process that exits or refuses is reported and skipped."""
    # lazy: only this platform's backend is loaded
    from hpforensics.live.scan import ScanOptions, scan_process

    options = options or ScanOptions()
    result = LiveScanResult()
    chosen = pick_processes(backend.processes(), pids, names)
    missing = set(pids) - {p.pid for p in chosen}
    for pid in sorted(missing):
        result.warnings.append(f"pid {pid}: no such process")
    source = backend.source
    for i, proc in enumerate(chosen):
        summary = ProcessSummary(source, proc.pid, proc.name, proc.exe)
        try:
            with backend.open(proc) as space:
                summary.exe = summary.exe or space.exe
                scan_process(space, summary, result, options)
        except ProcessGone:
            summary.status = "exited"
        except NoUserSpace as exc:
            summary.status = f"skipped: {exc}"
        except AccessDenied as exc:
            summary.status = f"access denied{': ' + str(exc) if str(exc) else ''}"
        result.processes.append(summary)
        if progress:
            progress(i + 1, len(chosen), proc)
    result.kernel_modules = backend.kernel_modules()
    return result


__all__ = [
    "AccessDenied",
    "LiveBackend",
    "LiveScanResult",
    "LiveSpace",
    "NoUserSpace",
    "OsPatchRecord",
    "ProcessGone",
    "ProcessInfo",
    "ProcessSummary",
    "Region",
    "pick_processes",
    "scan_live",
    "select_backend",
]
