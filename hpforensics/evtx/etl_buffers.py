"""The buffers of an ETW trace file, checked one by one, damage reported and stepped over.

A trace is a header buffer then buffers of the session's buffer size, each a WMI_BUFFER_HEADER
and records; SavedOffset says how many bytes are in use. In a compressed trace (LogFileMode
EVENT_TRACE_COMPRESSED_MODE, Windows 8+) each buffer after the header one is stored as its
header plus the compressed bytes, BufferSize being the stored size and SavedOffset the size
once decompressed; the algorithm (COMPRESSION_FORMAT_*) is in the header buffer's State.

dissect.etl follows each buffer's BufferSize, reads FilledBytes, and decompresses any
compressed buffer as plain LZ77 Xpress; one bad header ends its walk. Here each header is
checked first, the stored algorithm is used (LZNT1, with dissect.util, chunk by chunk so a
crafted stream cannot grow past the stated size; Xpress traces are reported, not read), and
after a damaged header the walk resumes at the next buffer: the nominal buffer size on, or
(compressed traces, whose buffers vary in size) the next place a plausible buffer header
starts.
"""
from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO, Callable, Iterator

log = logging.getLogger(__name__)

# WMI_BUFFER_HEADER up to BufferType (the ReferenceTime after it is not needed)
_HEADER = struct.Struct("<IIIiqqQHHIIHH")
HEADER_SIZE = 0x48
MIN_BUFFER, MAX_BUFFER = 0x400, 64 << 20
_FLAG_COMPRESSED = 0x0040
_COMPRESSED_MODE = 0x04000000  # EVENT_TRACE_COMPRESSED_MODE
_MAX_BUFFER_TYPE = 8
_LZNT1 = 2  # COMPRESSION_FORMAT_LZNT1
MAX_DAMAGED = 64


@dataclass(frozen=True)
class BufferHeader:
    offset: int  # in the file
    size: int  # BufferSize: bytes the buffer takes in the file
    saved: int  # SavedOffset: bytes in use (decompressed, for a compressed buffer)
    used: int  # Offset: bytes in use when flushed
    state: int
    flags: int
    kind: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & _FLAG_COMPRESSED)

    @property
    def in_use(self) -> int:
        """SavedOffset, or Offset when SavedOffset is out of range (they agree once flushed)."""
        return self.saved if HEADER_SIZE <= self.saved <= self.size else self.used


@dataclass
class Buffer:
    index: int
    header: BufferHeader
    data: bytes  # the records (decompressed), from just after the header
    cut: int = 0  # file offset where the file ends inside this buffer's data, else 0


class Layout:
    """What the header buffer says about every other buffer."""

    def __init__(self, fh: BinaryIO, file_size: int, first_size: int, logged_size: int,
                 log_file_mode: int, expected: int) -> None:
        self.fh = fh
        self.file_size = file_size
        self.nominal = _nominal(fh, file_size, first_size, logged_size)
        first = self.header(0)
        fmt = first.state & 0xFFFF if first and log_file_mode & _COMPRESSED_MODE else 0
        self.decompress = _decompressor(fmt)
        self.compression = fmt
        # A trace copied while its session was still running says 0 buffers written: then
        # the file's length says how many there may be.
        self.expected = expected or file_size // self.nominal

    def header(self, offset: int) -> BufferHeader | None:
        if offset + HEADER_SIZE > self.file_size:
            return None
        self.fh.seek(offset)
        return _parse(self.fh.read(_HEADER.size), 0, offset)

    def problem(self, h: BufferHeader) -> str:
        """Why a buffer header cannot be trusted ('' when it can). A file cut inside the
        buffer is not a header problem: its complete records are still read."""
        if h.compressed:
            if self.decompress is None:
                return "is compressed in a trace that does not say how"
            if not HEADER_SIZE < h.size <= 2 * self.nominal:
                return f"has a bad header: stored size {h.size:#x} of a compressed buffer"
            if not HEADER_SIZE <= h.saved <= self.nominal:
                return f"has a bad header: {h.saved:#x} bytes in use once decompressed"
            return ""
        if h.size != self.nominal:
            return (f"has a bad header: BufferSize {h.size:#x}, the trace's buffers are "
                    f"{self.nominal:#x}")
        if not HEADER_SIZE <= h.in_use <= h.size or h.in_use % 8:
            return f"has a bad header: {h.in_use:#x} bytes in use in a {h.size:#x}-byte buffer"
        return ""

    def read(self, index: int, h: BufferHeader) -> Buffer:
        """The buffer's records; raises ValueError when compressed data does not decompress
        to the size the header says."""
        self.fh.seek(h.offset + HEADER_SIZE)
        if not h.compressed:
            want = h.in_use - HEADER_SIZE
            data = self.fh.read(want)
            cut = h.offset + HEADER_SIZE + len(data) if len(data) < want else 0
            return Buffer(index, h, data, cut)
        stored = self.fh.read(h.size - HEADER_SIZE)
        if len(stored) < h.size - HEADER_SIZE:  # a cut stream cannot be decompressed
            return Buffer(index, h, b"", h.offset + HEADER_SIZE + len(stored))
        decompress = self.decompress
        if decompress is None:  # buffers() stops before any such buffer: problem() names it
            raise ValueError("is compressed in a trace that does not say how")
        try:
            data = decompress(stored, h.saved - HEADER_SIZE)
        except Exception as exc:  # noqa: BLE001 - damaged compressed data, any failure
            raise ValueError(f"does not decompress ({type(exc).__name__}: {exc})") from None
        if len(data) != h.saved - HEADER_SIZE:
            raise ValueError(f"decompresses to {len(data):#x} bytes, the header says "
                             f"{h.saved - HEADER_SIZE:#x}")
        return Buffer(index, h, data)

    def resume(self, h: BufferHeader) -> int | None:
        """Where reading goes on after a damaged buffer header at `h.offset`."""
        nxt = h.offset + self.nominal
        if self.compression == 0 or self._plausible(nxt):
            return nxt if nxt + HEADER_SIZE <= self.file_size else None
        # compressed buffers vary in size and need not be aligned: look for the next header
        # within a few buffers' length, at the places the size fields allow (a regex does
        # the byte-by-byte part), then check each as any header is checked
        start = h.offset + 1
        self.fh.seek(start)
        window = self.fh.read(min(self.file_size - start, 4 * self.nominal + HEADER_SIZE))
        for match in _candidates(self.nominal).finditer(window):
            pos = match.start()
            c = _parse(window, pos, start + pos)
            # problem() bounds BufferSize; SavedOffset is bounded here too because an
            # uncompressed header may fall back to Offset for its bytes in use
            if (HEADER_SIZE <= c.saved <= self.nominal and c.kind <= _MAX_BUFFER_TYPE
                    and not self.problem(c)):
                return start + pos
        return None

    def _plausible(self, offset: int) -> bool:
        h = self.header(offset)
        return h is not None and h.kind <= _MAX_BUFFER_TYPE and not self.problem(h)


def _parse(data: bytes, pos: int, offset: int) -> BufferHeader:
    (size, saved, _cur, _ref, _ts, _seq, _clock, _cpu, _logger, state, used, flags,
     kind) = _HEADER.unpack_from(data, pos)
    return BufferHeader(offset, size, saved, used, state, flags, kind)


@lru_cache(maxsize=8)
def _candidates(nominal: int) -> re.Pattern[bytes]:
    """Where a header may start, as the checks in resume() allow: BufferSize in
    (HEADER_SIZE, 2 * nominal], SavedOffset in [HEADER_SIZE, nominal], BufferType at most
    _MAX_BUFFER_TYPE, the whole header inside the window. Bounds only on whole bytes, so
    every place the checks accept matches (and a few more, which the checks then refuse)."""
    # BufferType first: in compressed (high-entropy) bytes it rules out nearly every place
    return re.compile(b"(?=.{54}[\\x00-\\x%02x]\\x00.{16})(?=%s%s)" % (
        _MAX_BUFFER_TYPE, _uint32_in(HEADER_SIZE + 1, 2 * nominal),
        _uint32_in(HEADER_SIZE, nominal)), re.DOTALL)


def _uint32_in(low: int, limit: int) -> bytes:
    """A regex for a little-endian uint32 at least `low` (< 0x100) and at most about `limit`
    (its two high bytes bounded): the low byte >= low, or any higher byte not zero."""
    hi = limit >> 16
    if hi < 0x100:
        high, above = b"[\\x00-\\x%02x]\\x00" % hi, b"[\\x01-\\x%02x]\\x00" % hi
    else:
        high = b".[\\x00-\\x%02x]" % (hi >> 8)
        above = b"(?:[\\x01-\\xff][\\x00-\\x%02x]|.[\\x01-\\x%02x])" % (hi >> 8, hi >> 8)
    if not hi:
        return b"(?:[\\x%02x-\\xff].|.[\\x01-\\xff])%s" % (low, high)
    return b"(?:[\\x%02x-\\xff].%s|.[\\x01-\\xff]%s|..%s)" % (low, high, high, above)


def buffers(layout: Layout, warn: Callable[[int, str], None]) -> Iterator[Buffer]:
    """Each readable buffer in file order; each damage is one warning (offset, text)."""
    if layout.compression and layout.decompress is None:
        warn(0, f"the trace is compressed with format {layout.compression} (COMPRESSION_FORMAT_"
                f"*), which is not read (LZNT1 is); no events taken from it")
        return
    offset, damaged = 0, 0
    for index in range(layout.expected):
        h = layout.header(offset)
        if h is None:
            warn(offset, f"the trace ends after {index} of its {layout.expected} buffers "
                         f"(file cut short); the events before were kept")
            return
        problem = layout.problem(h)
        if not problem:
            try:
                buf = layout.read(index, h)
            except ValueError as exc:
                problem = str(exc)
        if problem:
            damaged += 1
            if damaged > MAX_DAMAGED:  # bounds the work (and the warnings) on hostile input
                warn(offset, f"more than {MAX_DAMAGED} damaged buffers: the rest of the trace "
                             f"was not read")
                return
            nxt = layout.resume(h)
            warn(offset, f"buffer {index} {problem}; its events were skipped"
                         + ("" if nxt is None else ", the buffers after it read"))
            if nxt is None:
                return
            offset = nxt
            continue
        yield buf
        if buf.cut:
            warn(buf.cut, f"the trace ends inside buffer {index} of {layout.expected} (file cut "
                          f"short); the complete events were kept")
            return
        offset += h.size
    if offset > layout.file_size:
        warn(layout.file_size, "the trace ends inside the unused space of its last buffer "
                               "(file cut short); no event was lost")


def _nominal(fh: BinaryIO, file_size: int, first: int, logged: int) -> int:
    """The trace's buffer size: the first buffer's, or the logfile header's when only that
    one leads to a buffer that says the same (a damaged first buffer header)."""
    for size in (first, logged):
        if MIN_BUFFER <= size <= MAX_BUFFER and size + 4 <= file_size:
            fh.seek(size)
            if int.from_bytes(fh.read(4), "little") in (size, logged):
                return size
    return first if MIN_BUFFER <= first <= MAX_BUFFER else logged


def _decompressor(fmt: int) -> Callable[[bytes, int], bytes] | None:
    """LZNT1 only: its 4 KiB chunks let the output be bounded by the size the header states.
    The Xpress formats (3, 4) have no such bound in dissect.util's decompressors (a crafted
    match length can ask for gigabytes), so a trace in them is reported, not read. None for
    an uncompressed trace too: problem() refuses its compressed buffers."""
    return _lznt1 if fmt == _LZNT1 else None


def _lznt1(stored: bytes, limit: int) -> bytes:
    """LZNT1 chunk by chunk (dissect.util decompresses each), stopping past `limit` bytes."""
    # lazy: dissect only for the inputs that need it
    from dissect.util.compression import lznt1

    out = bytearray()
    pos = 0
    while pos + 2 <= len(stored) and len(out) <= limit:
        head = int.from_bytes(stored[pos:pos + 2], "little")
        if head & 0x7000 != 0x3000:  # no chunk signature: the end of the stream
            break
        end = pos + 2 + (head & 0xFFF) + 1
        out += lznt1.decompress(stored[pos:end])
        pos = end
    return bytes(out)
