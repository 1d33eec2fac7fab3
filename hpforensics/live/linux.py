"""Linux live backend: /proc/PID/maps, /proc/PID/mem and /proc/PID/pagemap, all read-only.

No ptrace attach, no signal, no stop: /proc/PID/mem opened O_RDONLY and read with pread is a
plain remote read (the kernel checks PTRACE_MODE_ATTACH but does not attach). pagemap tells,
without reading the page, whether a page of a private file mapping is still the page-cache page
(bit 61 set, "file page or shared anon") or has become a private anonymous copy (bit 61 clear:
written to, by the process, a debugger, or an attacker). Only the latter can differ from the
file; pagemap's flag bits are readable by anyone who may read the process (PFNs need root).
"""
from __future__ import annotations

import errno
import logging
import os
import stat
import time
from typing import Sequence

from hpforensics.reference.headers import mapped_size_of_image

from hpforensics.live.procfs import (
    PE_SUFFIXES,
    PROC,
    USER_LIMIT,
    classify_pagemap,
    parse_maps,
)
from hpforensics.live.space import (
    AccessDenied,
    LiveBackend,
    LiveSpace,
    NoUserSpace,
    ProcessGone,
    ProcessInfo,
    Region,
)
from hpforensics.space import PAGE_SIZE, MappedImage, ReadResult

log = logging.getLogger(__name__)

START_SLACK = 0.05  # seconds: the start time is known to a clock tick (10 ms)


def _boot_time() -> float:
    """Epoch seconds of boot, to the clock's precision (/proc/stat btime is whole seconds)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def _read_text(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "surrogateescape")


class LinuxProcessSpace(LiveSpace):
    def __init__(self, proc: ProcessInfo, source: str,
                 mtimes: dict[tuple[str, int], tuple[float, int]] | None = None) -> None:
        # (dev, inode) -> (mtime, size), shared by the processes of one scan
        self._mtimes = mtimes if mtimes is not None else {}
        self.pid = proc.pid
        self.process = proc.name
        self.source = source
        base = f"{PROC}/{proc.pid}"
        # mem and pagemap are opened first: each holds the address space as it is now. The maps
        # read after them describe that space or, if the process execs meanwhile, a newer one;
        # reads through the old handles then come back empty (ProcessGone), never as bytes of
        # another program at the new program's addresses.
        try:
            self._mem = os.open(f"{base}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ProcessGone(proc.pid) from None
        except PermissionError as exc:
            raise AccessDenied(exc.strerror or "permission denied") from None
        except ProcessLookupError:
            # mem of a kernel thread or zombie answers ESRCH while its /proc entry stays
            if os.path.isdir(base):
                raise NoUserSpace("kernel thread or zombie, no user-space memory") from None
            raise ProcessGone(proc.pid) from None
        try:
            self._pagemap: int | None = os.open(f"{base}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._pagemap = None
        try:
            self._maps = _read_text(f"{base}/maps")
        except OSError as exc:
            self.close()
            if isinstance(exc, PermissionError):
                raise AccessDenied(exc.strerror or "permission denied") from None
            raise ProcessGone(proc.pid) from None
        if not self._maps:
            self.close()
            raise NoUserSpace("kernel thread or zombie, no user-space memory")
        try:
            exe = proc.exe or os.readlink(f"{base}/exe")
        except OSError:
            exe = ""
        self.exe = exe.removesuffix(" (deleted)")
        self._regions: list[Region] | None = None  # every mapping: parsed when first asked
        self._started: float | None = None
        self._kernel: list[Region] = []
        self._images = self._group_images()
        self._by_base = {img.base: (img, regs) for img, regs in self._images}

    # -- AddressSpace ---------------------------------------------------------------------------
    def images(self) -> Sequence[MappedImage]:
        return [img for img, _ in self._images]

    def image_regions(self, image: MappedImage) -> Sequence[Region]:
        found = self._by_base.get(image.base)
        return found[1] if found and (found[0] is image or found[0] == image) else []

    def regions(self) -> Sequence[Region]:
        if self._regions is None:
            self._regions = parse_maps(self._maps)
        return self._regions

    def kernel_regions(self) -> Sequence[Region]:
        return self._kernel

    def read(self, address: int, size: int) -> ReadResult:
        first = address & ~(PAGE_SIZE - 1)
        n_pages = (address + size - first + PAGE_SIZE - 1) // PAGE_SIZE if size else 0
        if address < 0 or address + size > USER_LIMIT:
            # a pointer value taken from the target (a branch target, a slot): not user space
            return ReadResult(address, bytes(size), (False,) * n_pages)
        try:
            data = os.pread(self._mem, size, address)
            if len(data) == size:
                return ReadResult(address, data, (True,) * n_pages)
            if not data:
                raise ProcessGone(self.pid)  # mem reads empty once the address space is gone
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise ProcessGone(self.pid) from None
        # Some page failed: go page by page, zero-filling the unreadable ones.
        out = bytearray(size)
        present = []
        for i in range(n_pages):
            lo = max(address, first + i * PAGE_SIZE)
            hi = min(address + size, first + (i + 1) * PAGE_SIZE)
            try:
                chunk = os.pread(self._mem, hi - lo, lo)
            except OSError as exc:  # EIO: this page cannot be read (guard, hole, device)
                if exc.errno == errno.ESRCH:
                    raise ProcessGone(self.pid) from None
                chunk = None
            if chunk == b"":
                raise ProcessGone(self.pid)
            ok = chunk is not None and len(chunk) == hi - lo
            if ok and chunk is not None:
                out[lo - address : hi - address] = chunk
            present.append(ok)
        return ReadResult(address, bytes(out), tuple(present))

    def read_into(self, address: int, buf: memoryview) -> list[bool]:
        n_pages = len(buf) // PAGE_SIZE
        try:
            if os.preadv(self._mem, [buf], address) == len(buf):
                return [True] * n_pages
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise ProcessGone(self.pid) from None
        got = self.read(address, len(buf))  # page by page
        buf[:] = got.data
        return list(got.present)

    # -- what only the OS can say -----------------------------------------------------------------
    def unchanged_pages(self, start: int, end: int) -> list[bool] | None:
        if self._pagemap is None:
            return None
        n = (end - start) // PAGE_SIZE
        try:
            entries = os.pread(self._pagemap, n * 8, (start // PAGE_SIZE) * 8)
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise ProcessGone(self.pid) from None
            return None
        if not entries:
            raise ProcessGone(self.pid)  # exited, or exec'd into a new address space
        if len(entries) != n * 8:
            return None
        return classify_pagemap(entries)

    def open_file(self, region: Region) -> tuple[int | None, str]:
        """The mapped file itself: map_files (the exact inode, so deleted and replaced files
        still work), else the path seen from the process's root, else the path; the last two
        only when their dev/inode are the ones the kernel reports for the mapping."""
        base = f"{PROC}/{self.pid}"
        candidates = [
            (f"{base}/map_files/{region.start:x}-{region.end:x}", "map_files"),
            (f"{base}/root{region.path}", "root"),
            (region.path, "path"),
        ]
        if region.path == self.exe:
            # the program itself: /proc/PID/exe reaches it even deleted, and unlike map_files
            # needs no CAP_SYS_ADMIN (containers); checked by inode like the paths
            candidates.insert(1, (f"{base}/exe", "exe"))
        why = "mapped file not found"
        for path, how in candidates:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ESRCH:
                    raise ProcessGone(self.pid) from None
                continue
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                why = "not a regular file"
                continue
            if how != "map_files" and (
                st.st_ino != region.inode
                or (region.dev and f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
                    != region.dev)
            ):
                os.close(fd)
                why = "file on disk replaced since it was mapped (inode differs)"
                continue
            return fd, how
        if region.deleted:
            why = "mapped file deleted and not reachable through map_files"
        return None, why

    def _stat(self, region: Region) -> tuple[float, int] | None:
        """(mtime, size) of the mapped inode, once per file per scan (libc is in every
        process); stat through map_files reaches the inode even if its path was replaced."""
        key = (region.dev, region.inode)
        if key not in self._mtimes:
            st = None
            for path in (f"{PROC}/{self.pid}/map_files/{region.start:x}-{region.end:x}",
                         f"{PROC}/{self.pid}/root{region.path}"):  # no CAP_SYS_ADMIN: by path
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if st.st_ino == region.inode:
                    break
                st = None
            if st is None:
                return None
            self._mtimes[key] = (st.st_mtime, st.st_size)
        return self._mtimes[key]

    def modified_after_start(self, region: Region) -> bool:
        start = self._start_time()
        st = self._stat(region) if start is not None else None
        return st is not None and st[0] > start + START_SLACK  # type: ignore[operator]

    def still_mapped(self, region: Region) -> bool:
        try:
            now = parse_maps(_read_text(f"{PROC}/{self.pid}/maps"))
        except OSError:
            raise ProcessGone(self.pid) from None
        key = (region.start, region.end, region.offset, region.inode)
        return any((r.start, r.end, r.offset, r.inode) == key for r in now)

    def mapped_size(self, region: Region) -> int | None:
        st = self._stat(region)
        return st[1] if st else None

    def _start_time(self) -> float | None:
        """Process start (epoch seconds): boot time + starttime ticks from /proc/PID/stat."""
        if self._started is None:
            try:
                fields = _read_text(f"{PROC}/{self.pid}/stat").rsplit(")", 1)[1].split()
                self._started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError, IndexError):
                self._started = -1.0
        return self._started if self._started >= 0 else None

    def close(self) -> None:
        for fd in (self._mem, self._pagemap):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._pagemap = None

    # -- helpers --------------------------------------------------------------------------------
    def _group_images(self) -> list[tuple[MappedImage, list[Region]]]:
        """One image per run of mappings of the same file (offset 0 starts a new one): its
        first mapping (the header) and its executable ones. Hot: it reads every maps line, so
        only those two kinds become Region records; the others only extend the image."""
        groups: list[list] = []  # [key, first Region, exec Regions, end]
        kernel: list[Region] = []
        for line in self._maps.splitlines():
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            path, perms = parts[5], parts[1]
            if path[0] != "/" or path == "/dev/zero (deleted)" or (
                    path.startswith("/SYSV") and path.endswith(" (deleted)")):
                # not a file: shared anonymous memory is named after its shmem inode
                if path[0] == "[" and "x" in perms:
                    kernel.append(parse_maps(line)[0])
                continue
            span, offset, key = parts[0], parts[2], (parts[3], parts[4], path)
            end = int(span[span.index("-") + 1 :], 16)
            if groups and offset.strip("0") and groups[-1][0] == key:
                group = groups[-1]
                group[3] = end
            else:
                group = [key, parse_maps(line)[0], [], end]
                groups.append(group)
            if "x" in perms:
                group[2].append(group[1] if len(group[2]) == 0 and group[1].end == end
                                and group[1].perms == perms else parse_maps(line)[0])
        self._kernel = kernel
        out = []
        for _, first, code, end in groups:
            path = first.path
            name = path.rsplit("/", 1)[-1]
            extent = self._pe_extent(first) if name.lower().endswith(PE_SUFFIXES) else None
            base = first.start
            mapped = None
            if extent is not None:
                # A PE image mapped the way Wine does: the header from the file, sections
                # either from the file or read into anonymous memory. Every mapping inside
                # SizeOfImage belongs to it.
                end = base + extent
                regs = self._pe_regions(first, end)
                mapped = self._pe_extension(end)
                mapped = None if mapped is None else mapped - base
            else:
                regs = [first] + [r for r in code if r is not first]
            if not any("x" in r.perms for r in regs):
                continue  # data only (a PE file a program mmapped to read): not code
            out.append((MappedImage(base=base, size=end - base, path=path, name=name,
                                    mapped_size=mapped), regs))
        return out

    def _pe_extension(self, end: int) -> int | None:
        """End of the image's extension pages: anonymous execute-read memory that starts
        exactly at SizeOfImage, as 24H2 maps PAGE_EXECUTE_READ extension pages after every
        hotpatchable image (docs/hotpatch-format.md); None when nothing adjoins the image."""
        stop = None
        for r in self.regions():
            if r.start == (stop or end) and not r.path and "x" in r.perms and "w" not in r.perms:
                stop = r.end
                if stop - end >= MAX_EXTENSION:
                    return end + MAX_EXTENSION
            elif r.start > (stop or end):
                break
        return stop

    def _pe_regions(self, first: Region, end: int) -> list[Region]:
        """The mappings of a Wine-style PE image: from its header up to SizeOfImage, stopping
        at the first mapping of another file or of the kernel — a PE file another program
        merely mmapped to read is followed by unrelated mappings, not by its sections."""
        out = []
        for r in self.regions():
            if r.end <= first.start:
                continue
            if r.start >= end or (r.path and (r.path != first.path or r.inode != first.inode)):
                break
            out.append(r)
        return out

    def _pe_extent(self, first: Region) -> int | None:
        """SizeOfImage when the mapping at offset 0 holds a PE header, else None."""
        if first.offset != 0:
            return None
        try:
            head = os.pread(self._mem, 0x400, first.start)
        except OSError:
            return None
        size = mapped_size_of_image(head)
        return (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) if size else None


MAX_EXTENSION = 0x100000  # far above the SCP page + HPAT pages seen; bounds a runaway read


class LinuxBackend(LiveBackend):
    name = "linux"

    def __init__(self) -> None:
        self._mtimes: dict[tuple[str, int], tuple[float, int]] = {}

    def processes(self) -> list[ProcessInfo]:
        self._mtimes = {}  # a new scan: files may have changed since the last one
        out = []
        for entry in os.listdir(PROC):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                name = _read_text(f"{PROC}/{pid}/comm").strip()
            except OSError:
                continue  # exited between listdir and here
            out.append(ProcessInfo(pid, name))  # the exe link is read when the process is
        return sorted(out, key=lambda p: p.pid)

    def open(self, proc: ProcessInfo) -> LinuxProcessSpace:
        if not os.path.isdir(f"{PROC}/{proc.pid}"):
            raise ProcessGone(proc.pid)
        return LinuxProcessSpace(proc, self.source, self._mtimes)

    def kernel_modules(self) -> list[str]:
        try:
            return sorted(line.split()[0] for line in _read_text(f"{PROC}/modules").splitlines())
        except OSError:
            return []
