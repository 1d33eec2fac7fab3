"""Per-page hashing and masked page comparison, backed by the C core `hpforensics._pagehash`.

Every call releases the GIL for its whole duration and splits the pages over `threads` native
threads (default: every CPU this process may use); results are identical for any thread count.

Pages are `page_size` bytes (a power of two, at least 16); a final partial page is hashed as
its own, shorter, length. Each page digest is the plain digest of that page's bytes with the
masked bytes replaced by zero, so `hashlib.sha256(page).digest()` and
`xxhash.xxh3_128_digest(page)` give the same values for unmasked pages.

A mask is either a bitmap (bytes-like, bit i = byte i, least significant bit first, exactly
ceil(n/8) bytes) or a sequence of `(start, end)` byte ranges sorted by start (end exclusive;
extra items in each tuple, such as a kind, are ignored). Masked bytes count as zero when
hashing and as equal when comparing.
"""
from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # typing_extensions is no dependency of the package: annotations only
    from typing_extensions import Buffer, TypeIs

from hpforensics import _pagehash

__all__ = [
    "ALGORITHMS", "DEFAULT_PAGE_SIZE", "FLAG_MASKED", "FLAG_ZERO", "Comparison", "PageHashes",
    "PageRecord", "available_implementations", "compare_pages", "hash_file", "hash_pages",
    "implementations", "page_records", "ranges_to_bitmap",
]

log = logging.getLogger(__name__)

FLAG_ZERO = _pagehash.FLAG_ZERO  # the page is all zero bytes (after masking)
FLAG_MASKED = _pagehash.FLAG_MASKED  # the page has at least one masked byte
ALGORITHMS = {"xxh128": _pagehash.ALGO_XXH128, "sha256": _pagehash.ALGO_SHA256}
DIGEST_SIZES = {"xxh128": 16, "sha256": 32}
DEFAULT_PAGE_SIZE = 4096
MAX_THREADS = 256  # the core never starts more; larger requests are clamped
# hash_file with a progress callback works in chunks of this many bytes (page-aligned, since
# page sizes are powers of two); the digests are the same as in one call
PROGRESS_CHUNK = 64 << 20

Mask = Union[bytes, bytearray, memoryview, Sequence[Sequence[int]], None]


@dataclass(frozen=True)
class PageHashes:
    """Digests of consecutive pages, stored contiguously (digest_size bytes per page)."""

    algo: str
    page_size: int
    digest_size: int
    digests: bytes
    flags: bytes
    length: int  # bytes hashed; the last page may be shorter than page_size

    def __len__(self) -> int:
        return len(self.flags)

    def digest(self, i: int) -> bytes:
        if not -len(self) <= i < len(self):
            raise IndexError(f"page {i} out of range for {len(self)} pages")
        i %= len(self)
        return self.digests[i * self.digest_size : (i + 1) * self.digest_size]

    def page_length(self, i: int) -> int:
        return min(self.page_size, self.length - i * self.page_size)


@dataclass(frozen=True)
class Comparison:
    """Where two equal-length buffers differ: page indices and merged byte ranges (sorted)."""

    pages: list[int]
    ranges: list[tuple[int, int]]
    page_size: int
    length: int

    def __bool__(self) -> bool:
        return bool(self.ranges)

    @property
    def differing_bytes(self) -> int:
        return sum(e - s for s, e in self.ranges)


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, not {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return min(threads, MAX_THREADS)


def _page_size(page_size: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError(f"page_size must be an int, not {type(page_size).__name__}")
    if page_size < 16 or page_size & (page_size - 1):
        raise ValueError(f"page_size must be a power of two >= 16, got {page_size}")
    return page_size


def _algo(algo: str) -> int:
    try:
        return ALGORITHMS[algo]
    except (KeyError, TypeError):
        choices = ", ".join(ALGORITHMS)
        raise ValueError(f"unknown algorithm {algo!r}; choose one of {choices}") from None


def _is_buffer(obj: Any) -> TypeIs[Buffer]:
    try:
        memoryview(obj).release()  # released at once, so an mmap can still be closed
    except TypeError:
        return False
    return True


def xxh3_128(data: Buffer) -> bytes:
    """XXH3-128 of a whole buffer, canonical 16 bytes (xxhash.xxh3_128_digest's value)."""
    return _pagehash.xxh3_128(data)


def ranges_to_bitmap(ranges: Sequence[Sequence[int]], n: int) -> bytes:
    """Bitmap (bit i = byte i, LSB first, ceil(n/8) bytes) with the bytes of `ranges` set.

    Ranges are `(start, end)` with `0 <= start <= end <= n`, sorted by start; overlapping or
    touching ranges are allowed and simply merge; items may carry more fields (ignored).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return _pagehash.ranges_to_bitmap(ranges, n)


def _mask(mask: Mask, n: int) -> Any:
    if mask is None:
        return None
    if _is_buffer(mask):
        return mask  # checked for length in C
    if isinstance(mask, (str, int)):
        raise TypeError("mask must be a bitmap or a sequence of (start, end) ranges, "
                        f"not {type(mask).__name__}")
    return ranges_to_bitmap(mask, n)


def _length(buf: Any) -> int:
    try:
        with memoryview(buf) as view:
            return view.nbytes
    except TypeError:
        raise TypeError(f"buf must be a bytes-like object, not {type(buf).__name__}") from None


def hash_pages(
    buf: Any,
    algo: str = "xxh128",
    page_size: int = DEFAULT_PAGE_SIZE,
    mask: Mask = None,
    threads: int | None = None,
) -> PageHashes:
    """Digest of every page of `buf` (any buffer-protocol object, read-only ones included)."""
    algo_id, page_size = _algo(algo), _page_size(page_size)
    n = _length(buf)
    bitmap = _mask(mask, n)
    digests, flags = _pagehash.hash_pages(buf, algo_id, page_size, bitmap, _threads(threads))
    return PageHashes(algo, page_size, DIGEST_SIZES[algo], digests, flags, n)


def hash_file(
    path: str | os.PathLike[str],
    algo: str = "xxh128",
    page_size: int = DEFAULT_PAGE_SIZE,
    mask: Mask = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PageHashes:
    """`hash_pages` over a file, opened read-only and memory-mapped (never written).

    `progress(done_bytes, total_bytes)` is called after each chunk when given.
    """
    _algo(algo)
    _page_size(page_size)
    with open(Path(path), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return hash_pages(b"", algo, page_size, mask, threads)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if progress is None:
                return hash_pages(mm, algo, page_size, mask, threads)
            return _hash_chunked(mm, size, algo, page_size, _mask(mask, size), threads, progress)


def _hash_chunked(
    mm: mmap.mmap, size: int, algo: str, page_size: int, bitmap: Any, threads: int | None,
    progress: Callable[[int, int], None],
) -> PageHashes:
    step = max(PROGRESS_CHUNK, page_size)
    digests, flags = [], []
    bits = memoryview(bitmap) if bitmap is not None else None
    with memoryview(mm) as whole:
        for off in range(0, size, step):
            part = whole[off : off + step]
            try:
                m = bits[off // 8 : (off + len(part) + 7) // 8] if bits is not None else None
                ph = hash_pages(part, algo, page_size, m, threads)
            finally:
                part.release()
            digests.append(ph.digests)
            flags.append(ph.flags)
            progress(min(size, off + step), size)
    return PageHashes(algo, page_size, DIGEST_SIZES[algo], b"".join(digests), b"".join(flags), size)


def compare_pages(
    a: Any,
    b: Any,
    page_size: int = DEFAULT_PAGE_SIZE,
    mask: Mask = None,
    threads: int | None = None,
) -> Comparison:
    """Pages and merged byte ranges where `a` and `b` differ outside the mask, in one pass."""
    page_size = _page_size(page_size)
    n = _length(a)
    if _length(b) != n:
        raise ValueError(f"buffers differ in length: {n} and {_length(b)} bytes")
    pages, ranges = _pagehash.compare_pages(a, b, page_size, _mask(mask, n), _threads(threads))
    return Comparison(pages, ranges, page_size, n)


@dataclass(frozen=True)
class PageRecord:
    """One page of one input, the row `hpforensics hash` prints."""

    file: str
    page: int
    offset: int
    length: int
    algo: str
    digest: str
    flags: str  # "zero", "masked", both comma-separated, or ""


def page_records(name: str, hashes: PageHashes) -> Iterator[PageRecord]:
    for i in range(len(hashes)):
        f = hashes.flags[i]
        words = [w for bit, w in ((FLAG_ZERO, "zero"), (FLAG_MASKED, "masked")) if f & bit]
        yield PageRecord(name, i, i * hashes.page_size, hashes.page_length(i), hashes.algo,
                         hashes.digest(i).hex(), ",".join(words))


def implementations() -> dict[str, Any]:
    """Which code path each primitive uses on this CPU (for logs and benchmarks)."""
    return _pagehash.implementations()


def available_implementations(kind: str) -> list[str]:
    """The code paths of `kind` ("xxh128", "sha256" or "compare") this CPU can run; any of
    them can be forced for a process with HPF_PAGEHASH_IMPL=kind=name (see docs/pagehash.md)."""
    return _pagehash._available(kind)
