"""Resource bounds: declared sizes larger than the input, a relocation table of a million
entries, cyclic and endless lists in a memory image. Each must end quickly, within a memory
limit, with a clear message where the input is refused."""
from __future__ import annotations

import resource
import shutil
import struct
import sys
import time

import pytest
from corrupt_checks import check_clean_failure

import corrupt_corpus as cc

AS_LIMIT = 3 << 30  # address space of the CLI subprocess: Python, numpy, pefile fit easily


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    d = tmp_path_factory.mktemp("million")
    path = d / "million.dll"
    path.write_bytes(cc.pe_million_relocs(cc.PE_BASE.read_bytes()))
    return path


@pytest.mark.timeout(120)
def test_million_relocations_pe_info_and_hash(cli, million):
    from hpforensics.pe.image import PEImage

    t = time.perf_counter()
    img = PEImage.from_file(million)
    assert len(img.base_relocations) == 1_000_000
    assert time.perf_counter() - t < 10  # pefile took 25 s; read block by block: < 1 s
    for args in (("pe", "info", million), ("hash", "-q", "-f", "csv", million)):
        proc = cli(*args, preexec_fn=_limited, timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.timeout(180)
def test_million_relocations_pe_diff(cli, million, tmp_path):
    """All million relocation sites applied and explained, as in a real rebased module."""
    from hpforensics.reference import build_expected

    base = 0x7FFB12340000
    mem = tmp_path / "million.mem"
    mem.write_bytes(bytes(build_expected(str(million), base).data))
    proc = cli("pe", "diff", "--disk", million, "--memory", mem, "--base", hex(base), "-f", "json",
               preexec_fn=_limited, timeout=180)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert '"unexplained"' not in proc.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["store", "manifest"])
def test_size_of_image_far_beyond_the_file(cli, tmp_path, command):
    """A 3.5 KiB file claiming a 1 GiB image took 2.5 GB and 10 s to import; now refused."""
    src = tmp_path / "bins"
    src.mkdir()
    data = cc.PE_BASE.read_bytes()
    claims = cc._put(data, cc._pe(data)["size_of_image"], "<I", 0x3FFF0000)
    (src / "claims-1g.dll").write_bytes(claims)
    shutil.copy(cc.PE_BASE, src / "good.dll")
    if command == "store":
        args = ("store", "build", src, "--db", tmp_path / "s.db", "-j", "1")
    else:
        args = ("manifest", "import", src, "--kb", "KB5052105", "-o", tmp_path / "m.json",
                "-j", "1")
    t = time.perf_counter()
    proc = cli(*args, preexec_fn=_limited, timeout=120)
    assert time.perf_counter() - t < 60
    assert "Traceback" not in proc.stderr and proc.returncode == 3, proc.stderr
    assert "claims-1g.dll" in proc.stderr and "SizeOfImage" in proc.stderr


def test_size_of_image_beyond_sections_pe_diff(cli, tmp_path):
    data = cc.PE_BASE.read_bytes()
    path = tmp_path / "claims-64m.dll"
    path.write_bytes(cc._put(data, cc._pe(data)["size_of_image"], "<I", 0x4000000))
    mem = tmp_path / "mem.bin"
    mem.write_bytes(bytes(0x4000000))
    proc = cli("pe", "diff", "--disk", path, "--memory", mem, "--base", "0x7ffb12340000")
    m = check_clean_failure(proc, path)
    assert "SizeOfImage" in m.string


# -- memory-image structure walks over a fake layer (fuzz/fakevol.py) ------------------------
sys.path.insert(0, str(cc.REPO / "fuzz"))
import fakevol  # noqa: E402


def _walker(mem: bytearray):
    from hpforensics.memimage import fastwalk

    return fakevol.walker(mem), fastwalk


def _proc(root: int, peb: int):
    return fakevol.process(root, peb)


@pytest.mark.timeout(30)
def test_cyclic_loader_list_and_vad_tree_end(caplog):
    mem = bytearray(0x10000)
    struct.pack_into("<Q", mem, 0x100 + 0x18, 0x200)  # PEB.Ldr
    head = 0x210
    struct.pack_into("<Q", mem, head, 0x1000)
    for at, nxt in ((0x1000, 0x1100), (0x1100, 0x1200), (0x1200, 0x1100)):  # 1 -> 2 -> 3 -> 2 ...
        struct.pack_into("<Q", mem, at, nxt)
        struct.pack_into("<Q", mem, at + 0x30, 0x7FFB00000000 + at)
        struct.pack_into("<I", mem, at + 0x40, 0x1000)
    for at, left, right in ((0x3000, 0x3100, 0x3000), (0x3100, 0x3000, 0x3100)):  # self and mutual
        struct.pack_into("<QQ", mem, at, left, right)
        struct.pack_into("<I", mem, at + 0x30, 2 << 4)
    w, _ = _walker(mem)
    mods = w.loader_images(_proc(0x3000, 0x100))
    assert [m.base & 0xFFFF for m in mods] == [0x1000, 0x1100, 0x1200]
    assert len(w.vad_images(_proc(0x3000, 0x100))) == 2
    # the analyst is told the list was cut, and where
    assert any("loader list loops back" in r.getMessage() and "0x1100" in r.getMessage()
               for r in caplog.records)


@pytest.mark.timeout(60)
def test_endless_loader_list_is_cut_at_the_limit(caplog):
    """100,000 distinct entries, none pointing back to the head: the walk stops at its limit."""
    n = 100_000
    mem = bytearray(0x1000 + n * 0x60)
    struct.pack_into("<Q", mem, 0x100 + 0x18, 0x200)
    struct.pack_into("<Q", mem, 0x210, 0x1000)
    for i in range(n):
        at = 0x1000 + i * 0x60
        struct.pack_into("<Q", mem, at, at + 0x60)
        struct.pack_into("<Q", mem, at + 0x30, 0x10000 * (i + 1))
        struct.pack_into("<I", mem, at + 0x40, 0x1000)
    w, fastwalk = _walker(mem)
    t = time.perf_counter()
    mods = w.loader_images(_proc(0, 0x100))
    assert len(mods) == fastwalk.MAX_ENTRIES
    assert time.perf_counter() - t < 20
    assert any("stopped at its limit" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(30)
def test_page_tables_sharing_one_table_are_walked_once(tmp_path):
    """Every PML4, PDPT and PD entry pointing at the same next table: the truncation check read
    512^3 tables (hours) before it kept a visited set; a frame past the end is still named."""
    from hpforensics.memimage.session import table_frames_beyond_end

    mem = bytearray(0x5000)
    for i in range(512):
        struct.pack_into("<Q", mem, 0x1000 + 8 * i, 0x2000 | 1)
        struct.pack_into("<Q", mem, 0x2000 + 8 * i, 0x3000 | 1)
        struct.pack_into("<Q", mem, 0x3000 + 8 * i, 0x4000 | 1)
    path = tmp_path / "shared-tables.raw"
    path.write_bytes(mem)
    t = time.perf_counter()
    assert table_frames_beyond_end(path, 0x1000) is None
    struct.pack_into("<Q", mem, 0x3000 + 8 * 511, 0x9000 | 1)  # one PT past the end of the file
    path.write_bytes(mem)
    assert table_frames_beyond_end(path, 0x1000) == 0x9000
    assert time.perf_counter() - t < 5
