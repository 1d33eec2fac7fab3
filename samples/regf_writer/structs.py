"""The on-disk structures of a Windows registry hive (regf primary file), each declared once.

From the published format: Maxim Suhanov, "Windows registry file format specification"
(github.com/msuhanov/regf, "Format of primary files"); Joachim Metz's libregf documentation
(github.com/libyal/libregf, "Windows NT Registry File (REGF) format") describes the same
layout. All numbers little-endian;
"offsets" in cells are relative to the start of the hive bins data (file offset - 4096).
"""
from __future__ import annotations

import struct

BASE_BLOCK_SIZE = 4096
HBIN_SIZE = 4096  # a hive bin is a multiple of this
CELL_ALIGN = 8
NO_CELL = 0xFFFFFFFF  # an absent list / class name

# Base block, first 512 bytes: Signature "regf", primary and secondary sequence numbers, last
# written FILETIME, major, minor, file type (0 primary, 1 old-format log, 6 new-format log),
# file format (1), root cell offset, hive bins data size, clustering factor, file name (64 bytes
# UTF-16LE), reserved up to the XOR-32 checksum at 508.
BASE_BLOCK = struct.Struct("<4sIIqIIIIIII64s")
CHECKSUM_AT = 508
FILE_TYPE_PRIMARY, FILE_TYPE_OLD_LOG, FILE_TYPE_LOG = 0, 1, 6

# New-format log entry header, 40 bytes: "HvLE", size (512 multiple), flags (base block flag bit
# 0), sequence number, hive bins data size, dirty pages count, hash-1, hash-2 (Marvin32); then
# (offset, size) per dirty page, then the pages ("Format of transaction log files", new format).
LOG_ENTRY = struct.Struct("<4sIIIIIQQ")

# Hive bin header, 32 bytes: "hbin", offset (from the hive bins data), size, reserved (8),
# timestamp (first bin only), spare.
HBIN = struct.Struct("<4sII8sqI")

# Key node "nk", 76 bytes before the name: flags, last written FILETIME, spare (access bits),
# parent, subkeys, volatile subkeys, subkeys list, volatile subkeys list, values, values list,
# security, class name, largest subkey name, largest subkey class name, largest value name,
# largest value data, WorkVar, name length, class name length.
NK = struct.Struct("<2sHqIIIIIIIIIIIIIIIHH")
KEY_HIVE_ENTRY, KEY_NO_DELETE, KEY_COMP_NAME = 0x0004, 0x0008, 0x0020

# Key value "vk", 20 bytes before the name: name length, data size (bit 31: data inline in the
# data offset field, 4 bytes or less), data offset, type, flags (bit 0: ASCII name), spare.
VK = struct.Struct("<2sHIIIHH")
DATA_INLINE = 0x80000000
VALUE_COMP_NAME = 0x0001

# Hash leaf "lh": count, then (key node offset, name hash) per subkey, sorted by upper-case name.
LH = struct.Struct("<2sH")
LH_ELEMENT = struct.Struct("<II")
# Fast leaf "lf": same, with the first four name characters as the hint.
LF_ELEMENT = struct.Struct("<I4s")

# Key security "sk": reserved, flink, blink, reference count, descriptor size, descriptor.
SK = struct.Struct("<2sHIIII")

REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 1, 2, 3, 4, 7, 11


def xor32(data: bytes) -> int:
    """The base block checksum: XOR of the first 508 bytes as 32-bit words; 0 becomes 1 and
    0xFFFFFFFF becomes 0xFFFFFFFE (the kernel's HvpHeaderCheckSum)."""
    value = 0
    for (word,) in struct.iter_unpack("<I", data[:CHECKSUM_AT]):
        value ^= word
    return {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(value, value)


def name_hash(name: str) -> int:
    """The hash leaf's hash: H = 37 * H + code of each upper-case character."""
    value = 0
    for ch in name.upper():
        value = (value * 37 + ord(ch)) & 0xFFFFFFFF
    return value
