"""The few header fields read without parsing a whole PE: identity, size, machine, a directory.

Sources index files by them, the engine sizes mappings and finds patch images by them; each
once read a handful of fields by its own offsets. The layout lives here (Windows SDK winnt.h:
e_lfanew at 0x3C; IMAGE_FILE_HEADER after the 4-byte signature; the optional header after it),
so a field is read one way everywhere. Never raises: a caller peeking at a header decides what
"not a PE" means for it.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

E_LFANEW = 0x3C
SIGNATURE = b"PE\0\0"
# Machine, NumberOfSections, TimeDateStamp, ..., Characteristics
_FILE_HEADER = struct.Struct("<HHIIIHH")
OPT_MAGIC_PE32_PLUS = 0x20B
OPT_SIZE_OF_IMAGE = 56  # SizeOfImage, SizeOfHeaders, CheckSum: same offsets in PE32 and PE32+
OPT_DIRECTORIES = {False: 96, True: 112}  # DataDirectory[0] by PE32 / PE32+


@dataclass(frozen=True)
class HeaderPeek:
    machine: int
    n_sections: int
    timestamp: int
    opt_size: int
    is64: bool
    size_of_image: int
    checksum: int
    opt_offset: int  # file/RVA offset of the optional header
    head: bytes

    @property
    def section_table(self) -> int:
        return self.opt_offset + self.opt_size

    def directory(self, index: int) -> tuple[int, int] | None:
        """(RVA, size) of data directory `index`, if the peeked bytes hold it."""
        at = self.opt_offset + OPT_DIRECTORIES[self.is64] + 8 * index
        if at + 8 > len(self.head):
            return None
        return struct.unpack_from("<II", self.head, at)


def peek(head: bytes | bytearray | memoryview) -> HeaderPeek | None:
    """The header fields from the first bytes of a PE (file or mapped), or None."""
    head = bytes(head)
    try:
        if head[:2] != b"MZ":
            return None
        (lfanew,) = struct.unpack_from("<I", head, E_LFANEW)
        if head[lfanew : lfanew + 4] != SIGNATURE:
            return None
        machine, nsec, ts, _, _, opt_size, _ = _FILE_HEADER.unpack_from(head, lfanew + 4)
        opt = lfanew + 4 + _FILE_HEADER.size
        (magic,) = struct.unpack_from("<H", head, opt)
        size, _, checksum = struct.unpack_from("<III", head, opt + OPT_SIZE_OF_IMAGE)
    except struct.error:
        return None
    return HeaderPeek(machine, nsec, ts, opt_size, magic == OPT_MAGIC_PE32_PLUS, size, checksum,
                      opt, head)
