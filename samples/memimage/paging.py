"""Physical memory and x64 4-level page tables, as Windows lays them out.

Physical memory is a dict of 4 KiB frames written once to a sparse raw file. Each address space
has its own PML4 with the self-referencing entry Windows uses (randomised index since Windows 10
1607; here a fixed index in the range Volatility's DTB scanner accepts). Kernel-half PML4
entries are shared by every process, as on Windows.
"""
from __future__ import annotations

import struct
from pathlib import Path

PAGE = 0x1000
P, RW, US, NX = 1, 2, 4, 1 << 63
SELF_REF_INDEX = 0x1A3  # within range(0x100, 0x1FF): "recent Windows" self-reference test
KERNEL_HALF = range(256, 512)


def canonical(va: int) -> int:
    va &= (1 << 48) - 1
    return va | (0xFFFF << 48) if va & (1 << 47) else va


class PhysicalMemory:
    """Frames allocated bottom-up from `start`; frames below it are placed explicitly."""

    def __init__(self, size: int, start: int) -> None:
        self.size = size
        self.frames: dict[int, bytearray] = {}
        self._next = start
        self.generated: list[tuple[int, int, str]] = []  # (first frame, count, content kind)
        self.content = None  # bulk.ContentFrames: makes the generated frames' bytes on save

    def alloc(self, count: int = 1) -> int:
        addr = self._next
        self._next += count * PAGE
        if self._next > self.size:
            raise MemoryError("sample image too small for the scenario")
        for i in range(count):
            self.frames[addr + i * PAGE] = bytearray(PAGE)
        return addr

    def alloc_generated(self, count: int, kind: str) -> int:
        """Frames whose content is made when saved, never held here (images at real size)."""
        addr = self._next
        self._next += count * PAGE
        if self._next > self.size:
            raise MemoryError("image too small for the scenario")
        self.generated.append((addr, count, kind))
        return addr

    def frame(self, addr: int) -> bytearray:
        return self.frames.setdefault(addr & ~(PAGE - 1), bytearray(PAGE))

    def write(self, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            frame = self.frame(addr + pos)
            off = (addr + pos) & (PAGE - 1)
            n = min(PAGE - off, len(data) - pos)
            frame[off : off + n] = data[pos : pos + n]
            pos += n

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            a = addr + len(out)
            off = a & (PAGE - 1)
            n = min(PAGE - off, size - len(out))
            out += self.frames.get(a & ~(PAGE - 1), bytes(PAGE))[off : off + n]
        return bytes(out)

    @property
    def used(self) -> int:
        return self._next

    def save(self, path: Path) -> None:
        """Write the frames into a file of `size` bytes; untouched frames stay holes."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as fh:
            fh.truncate(self.size)
            for addr in sorted(self.frames):
                frame = self.frames[addr]
                if any(frame):
                    fh.seek(addr)
                    fh.write(frame)
            for first, count, kind in self.generated:  # streamed, a few MiB at a time
                fh.seek(first)
                for chunk in range(0, count, 1024):
                    fh.write(b"".join(self.content.page(kind, first + i * PAGE)
                                      for i in range(chunk, min(count, chunk + 1024))))
        tmp.replace(path)


class AddressSpace:
    """One set of page tables rooted at `dtb`."""

    def __init__(self, mem: PhysicalMemory, dtb: int | None = None,
                 kernel: "AddressSpace | None" = None) -> None:
        self.mem = mem
        self.dtb = dtb if dtb is not None else mem.alloc()
        mem.frame(self.dtb)
        self._put(self.dtb, SELF_REF_INDEX, self.dtb | P | RW | NX)
        if kernel is not None:  # share the kernel half
            for i in KERNEL_HALF:
                if i != SELF_REF_INDEX:
                    e = kernel._get(kernel.dtb, i)
                    if e:
                        self._put(self.dtb, i, e)

    def _get(self, table: int, index: int) -> int:
        return struct.unpack_from("<Q", self.mem.frame(table), index * 8)[0]

    def _put(self, table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", self.mem.frame(table), index * 8, value)

    def _pte_slot(self, va: int) -> tuple[int, int]:
        """(page table frame, index) for va, creating intermediate tables."""
        va &= (1 << 48) - 1
        table = self.dtb
        user = va < (1 << 47)
        for shift in (39, 30, 21):
            index = (va >> shift) & 0x1FF
            entry = self._get(table, index)
            if not entry & P:
                new = self.mem.alloc()
                entry = new | P | RW | (US if user else 0)
                self._put(table, index, entry)
            table = entry & 0x000FFFFFFFFFF000
        return table, (va >> 12) & 0x1FF

    def map(self, va: int, pa: int, *, user: bool, writable: bool = True,
            executable: bool = False) -> None:
        table, index = self._pte_slot(va)
        flags = P | (RW if writable else 0) | (US if user else 0) | (0 if executable else NX)
        self._put(table, index, pa | flags | 0x20)  # accessed

    def map_paged_out(self, va: int, pagefile_offset: int, protection: int = 6) -> None:
        """A pagefile PTE: not valid, not transition, not prototype; frame is in the page file."""
        table, index = self._pte_slot(va)
        self._put(table, index, (pagefile_offset << 32) | (protection << 5))

    def translate(self, va: int) -> int | None:
        va &= (1 << 48) - 1
        table = self.dtb
        for shift in (39, 30, 21, 12):
            entry = self._get(table, (va >> shift) & 0x1FF)
            if not entry & P:
                return None
            table = entry & 0x000FFFFFFFFFF000
        return table | (va & 0xFFF)

    def alloc_map(self, va: int, size: int, *, user: bool, writable: bool = True,
                  executable: bool = False) -> None:
        for off in range(0, size, PAGE):
            if self.translate(va + off) is None:
                self.map(va + off, self.mem.alloc(), user=user, writable=writable,
                         executable=executable)

    def write(self, va: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            a = va + pos
            pa = self.translate(a)
            if pa is None:
                raise ValueError(f"write to unmapped {a:#x}")
            n = min(PAGE - (a & 0xFFF), len(data) - pos)
            self.mem.write(pa, data[pos : pos + n])
            pos += n

    def read(self, va: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            a = va + len(out)
            pa = self.translate(a)
            n = min(PAGE - (a & 0xFFF), size - len(out))
            out += self.mem.read(pa, n) if pa is not None else bytes(n)
        return bytes(out)
