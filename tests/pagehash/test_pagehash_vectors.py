"""Digests against published vectors, hashlib and the xxhash binding, for every code path."""
from __future__ import annotations

import hashlib
import random

import pytest
import xxhash
from pagehash_impls import available

from hpforensics import _pagehash, pagehash

# FIPS 180-4 / NIST CSRC example values
SHA256_VECTORS = [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]

# xxHash's published XXH3-128 sanity vectors (seed 0) over its generated test buffer,
# as (length, high64, low64)
XXH3_128_VECTORS = [
    (0, 0x99AA06D3014798D8, 0x6001C324468D497F),
    (1, 0xA6CD5E9392000F6A, 0xC44BDFF4074EECDB),
    (6, 0x082AFE0B8162D12A, 0x3E7039BDDA43CFC6),
    (12, 0x6E3EFD8FC7802B18, 0x061A192713F69AD9),
    (24, 0x0CE966E4678D3761, 0x1E7044D28B1B901D),
    (48, 0xA002AC4E5478227E, 0xF942219AED80F67B),
    (81, 0x4952F58181AB0042, 0x5E8BAFB9F95FB803),
    (222, 0x337E09641B948717, 0xF1AEBD597CEC6B3A),
    (403, 0x1B6DE21E332DD73D, 0xCDEB804D65C6DEA4),
    (512, 0x18D2D110DCC9BCA1, 0x617E49599013CB6B),
    (2048, 0xF736557FD47073A5, 0xDD59E2C3A5F038E0),
    (2240, 0xCCB134FBFA7CE49D, 0x6E73A90539CF2948),
    (2367, 0xE89C0F6FF369B427, 0xCB37AEB9E5D361ED),
]


def sanity_buffer(n: int) -> bytes:
    gen, out = 2654435761, bytearray(n)
    for i in range(n):
        out[i] = gen >> 56
        gen = (gen * 11400714785074694797) & (2**64 - 1)
    return bytes(out)


@pytest.fixture(scope="module")
def data() -> bytes:
    return random.Random(20240611).randbytes(70_000)


@pytest.mark.parametrize("impl", available("sha256"))
def test_sha256_published_vectors(impl, use_impl):
    use_impl("sha256", impl)
    for msg, want in SHA256_VECTORS:
        assert _pagehash.sha256(msg).hex() == want


@pytest.mark.parametrize("impl", available("xxh128"))
def test_xxh3_published_vectors(impl, use_impl):
    use_impl("xxh128", impl)
    buf = sanity_buffer(2367)
    for n, hi, lo in XXH3_128_VECTORS:
        assert _pagehash.xxh3_128(buf[:n]) == hi.to_bytes(8, "big") + lo.to_bytes(8, "big"), n


def lengths() -> list[int]:
    # every short-input branch, every stripe/block boundary around one and two pages, and more
    edges = [4095, 4096, 4097, 8191, 8192, 65536, 70_000]
    return list(range(0, 1100)) + list(range(1100, 9000, 61)) + edges


@pytest.mark.parametrize("impl", available("xxh128"))
def test_xxh3_matches_xxhash_binding(impl, use_impl, data):
    use_impl("xxh128", impl)
    bad = [n for n in lengths() if _pagehash.xxh3_128(data[:n]) != xxhash.xxh3_128_digest(data[:n])]
    assert bad == []


@pytest.mark.parametrize("impl", available("sha256"))
def test_sha256_matches_hashlib(impl, use_impl, data):
    use_impl("sha256", impl)
    bad = [n for n in lengths() if _pagehash.sha256(data[:n]) != hashlib.sha256(data[:n]).digest()]
    assert bad == []


def test_simd_paths_exist_on_x86_with_avx2():
    """On this CI hardware the fast paths must actually be chosen, not silently skipped."""
    info = pagehash.implementations()
    cpu = info["cpu"]
    if cpu["avx2"]:
        assert info["xxh128"] == ("avx512" if cpu["avx512"] else "avx2")
        assert info["compare"] == ("avx512" if cpu["avx512bw"] else "avx2")
    if info["cpu"]["sha"]:
        assert info["sha256"] == "shani"
    assert set(available("xxh128")) >= {"scalar"}


@pytest.mark.parametrize("algo", ["xxh128", "sha256"])
def test_page_digests_are_plain_digests(algo, data):
    ref = xxhash.xxh3_128_digest if algo == "xxh128" else (lambda b: hashlib.sha256(b).digest())
    ph = pagehash.hash_pages(data, algo, 4096)
    assert len(ph) == (len(data) + 4095) // 4096
    assert ph.digest_size == len(ref(b""))
    for i in range(len(ph)):
        assert ph.digest(i) == ref(data[i * 4096 : (i + 1) * 4096])
    # the final partial page is hashed as its own length
    assert ph.page_length(len(ph) - 1) == len(data) % 4096
    assert ph.digest(-1) == ref(data[(len(ph) - 1) * 4096 :])


def test_available_implementations_follow_the_cpu_and_leave_the_choice(use_impl):
    cpu = pagehash.implementations()["cpu"]
    use_impl("xxh128", "scalar")
    xxh = pagehash.available_implementations("xxh128")
    assert pagehash.implementations()["xxh128"] == "scalar"  # probing changed nothing
    assert xxh[0] == "scalar"
    for isa in ("sse2", "avx2", "avx512", "neon"):
        assert (isa in xxh) == cpu[isa], isa
    assert ("avx512" in pagehash.available_implementations("compare")) == cpu["avx512bw"]
    with pytest.raises(ValueError, match="unknown kind"):
        pagehash.available_implementations("md5")
