"""Damaged memory images through `hpforensics dump analyze`: empty, cut short (the page tables
point past the end: one line naming the file and the first missing address, exit 2), and with
holes (zeroed pages): the processes and modules outside the holes are all still reported."""
from __future__ import annotations

import json

import pytest
from corrupt_checks import check_clean_failure

import corrupt_corpus as cc

ARGS = ("-s", cc.SAMPLES / "symbols", "--reference", cc.SAMPLES / "pe", "-q")


def _analyze(cli, image, out):
    return cli("dump", "analyze", image, *ARGS, "-o", out, timeout=300)


def _eprocess_pages() -> tuple[set[int], set[int]]:
    """The last two processes on the active list, and the physical pages that hold their
    EPROCESS records (through the kernel layer, so the test follows the sample's layout; a
    record can straddle two virtual pages that map to frames far apart)."""
    from volatility3.plugins.windows import pslist

    from hpforensics.memimage.session import open_image

    session = open_image(cc.MEM_IMAGE, [cc.SAMPLES / "symbols"])
    procs = list(pslist.PsList.list_processes(session.context, session.kernel))[-2:]
    layer = session.context.layers[session.context.modules[session.kernel].layer_name]
    pages = set()
    for p in procs:
        for va in (int(p.vol.offset), int(p.vol.offset) + p.vol.size - 1):
            pages.add(layer.translate(va)[0] & ~0xFFF)
    return {int(p.UniqueProcessId) for p in procs}, pages


def test_empty_image(cli, corpus, tmp_path):
    path = corpus / "mem_empty.raw"
    proc = _analyze(cli, path, tmp_path / "out")
    check_clean_failure(proc, path, need_offset=False)
    assert "truncated" in proc.stderr


@pytest.mark.parametrize("cut", [0x400000, 0x428000])
def test_image_cut_short_names_the_missing_address(cli, tmp_path, cut):
    path = tmp_path / "cut.raw"
    path.write_bytes(cc.mem_cut(cc.MEM_IMAGE.read_bytes(), cut))
    proc = _analyze(cli, path, tmp_path / "out")
    check_clean_failure(proc, path, need_offset=False)
    assert f"{cut:#x}" in proc.stderr and "truncated" in proc.stderr


def test_image_with_holes_keeps_every_intact_record(cli, tmp_path):
    clean_out, hole_out = tmp_path / "clean", tmp_path / "holes"
    proc = _analyze(cli, cc.MEM_IMAGE, clean_out)
    assert proc.returncode == 0, proc.stderr
    holed = tmp_path / "holes.raw"
    last_two, pages = _eprocess_pages()
    data = cc.MEM_IMAGE.read_bytes()
    for page in pages:
        data = cc.mem_holes(data, page, page + 0x1000)
    holed.write_bytes(data)
    proc = _analyze(cli, holed, hole_out)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 3), proc.stderr
    clean = json.loads((clean_out / "report.json").read_text())
    damaged = json.loads((hole_out / "report.json").read_text())
    lost = {p["pid"] for p in clean["processes"]} - {p["pid"] for p in damaged["processes"]}
    assert lost == last_two  # their EPROCESS pages are in the hole: the damage is real
    # What the list still links to there reads as zeros: said, per entry, and the run is partial.
    assert proc.returncode == 3
    zeroed = [w for w in damaged["warnings"] if "EPROCESS reads as zeros" in w]
    assert len(zeroed) == 2 and all("process list entry at 0x" in w for w in zeroed)
    assert zeroed[0] in proc.stderr
    assert "EPROCESS reads as zeros" not in (clean_out / "report.json").read_text()
    # The hole lies past the records of these (the sample's layout): all of them still reported.
    intact = {p["pid"] for p in clean["processes"]} - last_two - {4404, 5012, 6120}
    by_pid = {p["pid"]: p for p in damaged["processes"]}
    for p in clean["processes"]:
        if p["pid"] in intact:
            assert by_pid[p["pid"]]["images"] == p["images"], p

    def mods(doc):
        return sorted((m["pid"] or -1, m["module"], m["pages_total"], m["pages_unexplained"])
                      for m in doc["modules"] if m["pid"] in intact)

    assert len(mods(clean)) > 30
    assert mods(damaged) == mods(clean)
