"""pe_checksum gives pefile's generate_checksum() value, on real files and on edge buffers
(pefile's loop, copied here as the reference, for buffers pefile will not parse)."""
from __future__ import annotations

import random
import struct

import pefile

from hpforensics.pe.checksum import pe_checksum
from hpforensics.pe.image import PEImage


def _pefile_loop(data: bytes, offset: int) -> int:
    """pefile 2024.8.26 generate_checksum(), after its write(), on `data` as it is."""
    checksum = 0
    remainder = len(data) % 4
    data_len = len(data) + ((4 - remainder) * (remainder != 0))
    for i in range(data_len // 4):
        if i == offset // 4:
            continue
        if i + 1 == data_len // 4 and remainder:
            dword = struct.unpack("I", data[i * 4:] + b"\0" * (4 - remainder))[0]
        else:
            dword = struct.unpack("I", data[i * 4:i * 4 + 4])[0]
        checksum += dword
        if checksum >= 2**32:
            checksum = (checksum & 0xFFFFFFFF) + (checksum >> 32)
    checksum = (checksum & 0xFFFF) + (checksum >> 16)
    checksum = checksum + (checksum >> 16)
    return (checksum & 0xFFFF) + len(data)


def test_real_files_as_pefile(real_pe_files):
    for path in real_pe_files:
        want = pefile.PE(str(path), fast_load=True).generate_checksum()
        image = PEImage.from_file(path)
        assert image.compute_checksum() == want, path
        assert want == image.checksum, path  # Microsoft's files carry their real checksum
        data = path.read_bytes()
        for cut in (len(data) - 1, len(data) - 2, len(data) - 3):  # every odd tail length
            assert pe_checksum(data[:cut], image.pe.OPTIONAL_HEADER.get_file_offset() + 0x40) \
                == _pefile_loop(data[:cut], image.pe.OPTIONAL_HEADER.get_file_offset() + 0x40)


def test_edges_as_pefiles_loop():
    rnd = random.Random(20)
    cases = [bytes(4096), b"\xff" * 4096, b"\xff" * 4095, b"\xff" * 7, bytes(3), b"\x01", b""]
    cases += [bytes(rnd.choice((0, 255, rnd.randrange(256))) for _ in range(rnd.randrange(300)))
              for _ in range(300)]
    for data in cases:
        for offset in (0, 2, 0xC0, max(len(data) - 2, 0), len(data) + 8, rnd.randrange(320)):
            assert pe_checksum(data, offset) == _pefile_loop(data, offset), (len(data), offset)
