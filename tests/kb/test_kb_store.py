"""Page-hash store on the real Microsoft DLLs: a copy relocated to another base still matches
page for page after masking; a changed byte is the one unmatched page; bad files are skipped."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pefile
import pytest

from hpforensics.errors import InputError, UsageError
from hpforensics.kb.normalize import PAGE_SIZE, hash_image_pages, memory_layout, normalize, parse_pe
from hpforensics.kb.store import PageStore
from hpforensics.kb.store_build import build

NEW_BASE = 0x7FFA_1230_0000


@pytest.fixture(scope="module")
def pe_dir(tmp_path_factory, real_pe_files) -> Path:
    d = tmp_path_factory.mktemp("pe")
    for f in real_pe_files:
        shutil.copy(f, d / f.name)
    (d / "broken").mkdir()
    (d / "broken" / "truncated.dll").write_bytes((d / real_pe_files[0].name).read_bytes()[:700])
    (d / "broken" / "README.txt").write_text("not a binary\n")
    return d


@pytest.fixture(scope="module")
def store(tmp_path_factory, pe_dir) -> PageStore:
    db = tmp_path_factory.mktemp("db") / "pages.db"
    s = PageStore(db, create=True)
    report = build(s, [pe_dir], ["KB5052105"], workers=2)
    assert report.added == len(list(pe_dir.glob("*.*")))
    reasons = {Path(k.path).name: (k.reason, k.error) for k in report.skipped}
    assert reasons["README.txt"] == ("not a PE file (no MZ header)", False)
    assert reasons["truncated.dll"][1] is True and "at offset 0x" in reasons["truncated.dll"][0]
    yield s
    s.close()


def relocated(path: Path, base: int = NEW_BASE) -> tuple[bytes, bytes]:
    """(file bytes, memory layout) of `path` rebased by pefile, the loader's arithmetic."""
    pe = pefile.PE(str(path))
    pe.relocate_image(base)
    return bytes(pe.write()), bytes(pe.get_memory_mapped_image())


def test_relocated_copy_matches_after_masking(real_pe_files) -> None:
    for path in real_pe_files:
        data = path.read_bytes()
        original = normalize(data, path.name)
        assert original.pages, f"{path.name}: no executable pages"
        file_copy, mapped_copy = relocated(path)
        assert normalize(file_copy, path.name).pages == original.pages
        assert normalize(mapped_copy, path.name, mapped=True).pages == original.pages


def test_mask_is_what_makes_relocated_pages_equal(real_pe_files) -> None:
    """Over every page of the image (not only code), the relocated copy differs from the file
    unmasked and equals it masked: the test above is not vacuous."""
    for path in real_pe_files:
        data = path.read_bytes()
        norm = normalize(data, path.name)
        pe = parse_pe(data, str(path))
        original = memory_layout(pe, data, False)
        moved = relocated(path)[1].ljust(len(original), b"\0")  # pefile stops at the last raw byte
        every = list(range(0, len(original), PAGE_SIZE))
        raw_a, _ = hash_image_pages(original, every, [])
        raw_b, _ = hash_image_pages(moved, every, [])
        assert any(raw_a[r] != raw_b[r] for r in every), path.name
        masked_a, _ = hash_image_pages(original, every, norm.mask)
        masked_b, _ = hash_image_pages(moved, every, norm.mask)
        assert masked_a == masked_b, path.name


def test_identify_exact_nearest_and_unmatched(store: PageStore, real_pe_files) -> None:
    path = next(p for p in real_pe_files if p.name == "msvcp140.dll")
    _, mapped_copy = relocated(path)
    exact = store.identify_image(mapped_copy, path.name, mapped=True)
    assert exact.exact and exact.unmatched == []
    assert exact.best.version.kbs == ("KB5052105",)
    assert exact.best.matched == exact.best.compared == exact.pages

    tampered = bytearray(mapped_copy)
    rvas = sorted(normalize(path.read_bytes(), path.name).pages)
    for rva in (rvas[0], rvas[-1]):
        tampered[rva + 0x80] ^= 0xCC
    near = store.identify_image(bytes(tampered), path.name, mapped=True)
    assert not near.exact
    assert near.best.version.name == "msvcp140.dll"
    assert near.unmatched == [rvas[0], rvas[-1]]
    assert near.best.matched == near.pages - 2


def test_unknown_name_is_found_by_its_pages(store: PageStore, real_pe_files) -> None:
    path = next(p for p in real_pe_files if p.name == "vcomp140.dll")
    m = store.identify_image(path.read_bytes(), "renamed.dll")
    assert m.best is not None and m.best.version.name == "vcomp140.dll" and m.exact


def test_lookup_digests_batches(store: PageStore, real_pe_files) -> None:
    norm = normalize(real_pe_files[0].read_bytes(), real_pe_files[0].name)
    digests = list(norm.pages.values()) + [b"\x01" * 32]
    hits = store.lookup_digests(digests, batch=3)
    assert b"\x01" * 32 not in hits
    for rva, d in norm.pages.items():
        if rva in norm.zero_pages:
            continue
        name = real_pe_files[0].name.lower()
        assert any((h.rva, h.name, h.kbs) == (rva, name, ("KB5052105",)) for h in hits[d])


def test_rebuild_links_a_second_kb(tmp_path, real_pe_files) -> None:
    db = tmp_path / "s.db"
    with PageStore(db, create=True) as s:
        first = build(s, real_pe_files[:2], ["KB5052105"], workers=1)
        again = build(s, real_pe_files[:2], ["KB5051987"], workers=1)
        assert (first.added, again.added, again.known) == (2, 0, 2)
        v = s.versions(real_pe_files[0].name)[0]
        assert v.kbs == ("KB5051987", "KB5052105")
        assert s.stats()["pages"] == first.pages


def test_bad_store_files(tmp_path) -> None:
    with pytest.raises(UsageError):
        PageStore(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError):
        PageStore(junk)
    other = tmp_path / "other.sqlite"
    import sqlite3

    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE evidence(x)")
    before = other.read_bytes()
    with pytest.raises(InputError, match="not a page-hash store"):
        PageStore(other, create=True)
    with pytest.raises(InputError, match="not a page-hash store"):
        PageStore(other)
    assert other.read_bytes() == before


def test_cli_build_and_lookup_dump_region(cli, tmp_path, pe_dir, real_pe_files) -> None:
    db = tmp_path / "cli.db"
    proc = cli("store", "build", pe_dir, "--db", db, "--kb", "KB5052105", "-j", "1")
    assert proc.returncode == 3, proc.stderr  # the truncated DLL makes the run partial
    assert "truncated.dll" in proc.stderr and "README.txt" in proc.stderr
    assert "Traceback" not in proc.stderr
    path = next(p for p in real_pe_files if p.name == "vcruntime140.dll")
    _, mapped_copy = relocated(path)
    region = bytearray(mapped_copy)
    region[0x1000 + 0x40] ^= 0xFF
    dump = tmp_path / "vcruntime140.dll.0x7ffa12300000.dmp"
    dump.write_bytes(region)
    proc = cli("store", "lookup", dump, "--db", db, "--base", hex(NEW_BASE), "--name", path.name,
               "-f", "json", check=True)
    rows = json.loads(proc.stdout)
    best = next(r for r in rows if r["row"] == "best")
    assert best["kbs"] == "KB5052105" and best["note"] == "nearest"
    assert best["matched"] == best["compared"] - 1
    (page,) = [r for r in rows if r["row"] == "unmatched-page"]
    assert page["rva"] == "0x1000" and page["address"] == hex(NEW_BASE + 0x1000)
    proc = cli("store", "lookup", path, "--db", db, "-f", "csv", check=True)
    assert ",exact" in proc.stdout
    proc = cli("store", "lookup", path, "--db", tmp_path / "nope.db")
    assert proc.returncode == 2 and proc.stderr.startswith("hpforensics: error:")


def test_page_size_constant() -> None:
    assert PAGE_SIZE == 4096


def test_sample_memory_dumps(tmp_path) -> None:
    """Modules carved from the sample memory image: the clean base matches its file exactly;
    the hotpatched one differs in the page holding the redirect, and only there."""
    pe = Path(__file__).resolve().parents[2] / "samples" / "pe"
    with PageStore(tmp_path / "s.db", create=True) as s:
        build(s, sorted(pe.glob("*.dll")) + sorted(pe.glob("*.sys")), ["KB5077212"], workers=1)
        clean = s.identify_image((pe / "mem" / "clean.hpbase.dll@7ffb12340000.bin").read_bytes(),
                                 "hpbase.dll", mapped=True)
        assert clean.exact and clean.kbs == ("KB5077212",)
        patched = s.identify_image((pe / "mem" / "hp1.hpbase.dll@7ffb12340000.bin").read_bytes(),
                                   "hpbase.dll", mapped=True)
        assert not patched.exact and patched.best.version.name == "hpbase.dll"
        assert patched.unmatched == [0x1000]


def test_pefile_fallback_without_the_engine(monkeypatch, real_pe_files) -> None:
    """Without hpforensics.reference the mask comes from pefile's parse: still base-independent."""
    import hpforensics.kb.normalize as nz

    monkeypatch.setattr(nz, "engine_template", lambda data, name: None)
    for path in real_pe_files:
        original = nz.normalize(path.read_bytes(), path.name)
        assert original.pe is not None and isinstance(original.mask, list)
        _, mapped_copy = relocated(path)
        assert nz.normalize(mapped_copy, path.name, mapped=True).pages == original.pages


def test_bloom_filter_covers_every_page(tmp_path, real_pe_files) -> None:
    import os

    from hpforensics.kb.store_bloom import Bloom

    db = tmp_path / "b.db"
    with PageStore(db, create=True) as s:
        build(s, real_pe_files, ["KB5052105"], workers=1)
    with PageStore(db) as s:
        bloom = s._bloom_load()
        assert bloom is not None and bloom.pages == s._pages_total() > 0
        stored = [d for (d,) in s.db.execute("SELECT digest FROM pages")]
        assert bloom.might_contain(stored).all()  # no false negatives, ever
        absent = [os.urandom(32) for _ in range(20_000)]
        assert bloom.might_contain(absent).mean() < 0.01
        # a page written behind the store's back makes the filter stale: it is not used
        s.db.execute("INSERT INTO images(name, timestamp, size_of_image, checksum, machine,"
                     " n_pages, mask) VALUES ('x.dll', 1, 2, 3, 4, 1, x'')")
        s.db.execute("INSERT INTO pages(image_id, rva, digest)"
                     " VALUES (last_insert_rowid(), 4096, ?)", (absent[0],))
        s.db.commit()
    with PageStore(db) as s:
        assert s._bloom_load() is None
        assert s.lookup_digests([absent[0]])[absent[0]][0].name == "x.dll"
        s.add_image(normalize(real_pe_files[0].read_bytes(), "copy.dll"))
        s.commit()  # rebuilt from the table
    with PageStore(db) as s:
        assert Bloom.load(s.db, s._pages_total()) is not None
        assert s.lookup_digests([absent[0]])  # still found through the rebuilt filter


def test_pages_of_a_version(store: PageStore, real_pe_files) -> None:
    path = real_pe_files[0]
    norm = normalize(path.read_bytes(), path.name)
    (version,) = store.versions(path.name)
    expected = {rva: (d, rva in norm.zero_pages) for rva, d in norm.pages.items()}
    assert store.pages_of(version) == expected
    assert store.find(path.name, norm.timestamp, norm.size_of_image) == version
