"""Damaged EVTX logs through `hpforensics timeline`: every chunk the damage did not touch keeps
its records (counted against the chunk headers of the clean log), warnings name file and offset,
exit 3 for partial input, 2 when nothing could be read, never a traceback."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from corrupt_checks import OFFSET, check_clean_failure

import corrupt_corpus as cc

REGRESSIONS = Path(__file__).resolve().parent / "regressions"


def _inputs_row(outdir: Path) -> dict:
    with open(outdir / "inputs.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    return rows[0]


@pytest.fixture(scope="module")
def clean_counts(shared_data) -> list[int]:
    return cc.evtx_chunk_records((shared_data / "evtx" / "system.evtx").read_bytes())


@pytest.mark.parametrize("case,chunk", [("evtx_bitflip_chunk", 2), ("evtx_zero_chunk_header", 1)])
def test_one_damaged_chunk_keeps_the_others(cli, corpus, tmp_path, clean_counts, case, chunk):
    path = corpus / f"{case}.evtx"
    proc = cli("timeline", path, "-o", tmp_path / "out", "--no-html")
    m = check_clean_failure(proc, path, codes=(3,))
    assert int(OFFSET.search(m.string).group(1), 16) == cc.EVTX_HEADER + chunk * cc.EVTX_CHUNK
    row = _inputs_row(tmp_path / "out")
    intact = sum(clean_counts) - clean_counts[chunk]
    assert int(row["expected_records"]) == intact
    assert int(row["records"]) >= intact  # the parser may still read the damaged chunk's head


def test_truncated_log_keeps_whole_chunks(cli, corpus, tmp_path, clean_counts):
    path = corpus / "evtx_truncated.evtx"
    proc = cli("timeline", path, "-o", tmp_path / "out", "--no-html")
    m = check_clean_failure(proc, path, codes=(3,))
    assert int(OFFSET.search(m.string).group(1), 16) == cc.EVTX_HEADER + 3 * cc.EVTX_CHUNK
    assert "truncated" in proc.stderr
    assert int(_inputs_row(tmp_path / "out")["records"]) == sum(clean_counts[:3])


def test_huge_claimed_chunk_count(cli, corpus, tmp_path, clean_counts):
    path = corpus / "evtx_huge_chunk_count.evtx"
    proc = cli("timeline", path, "-o", tmp_path / "out", "--no-html", timeout=120)
    check_clean_failure(proc, path, codes=(3,), need_offset=False)
    assert "header" in proc.stderr
    assert int(_inputs_row(tmp_path / "out")["records"]) == sum(clean_counts)


@pytest.mark.parametrize("case", ["evtx_empty", "evtx_header_only"])
def test_nothing_readable_is_a_user_error(cli, corpus, tmp_path, case):
    path = corpus / f"{case}.evtx"
    proc = cli("timeline", path, "-o", tmp_path / "out", "--no-html")
    check_clean_failure(proc, path, codes=(2,), need_offset=(case != "evtx_empty"))


def test_damaged_log_beside_a_good_one(cli, corpus, tmp_path, shared_data, clean_counts):
    """Two inputs, one damaged: the good one's records all count, exit 3."""
    good = tmp_path / "good.evtx"
    good.write_bytes((shared_data / "evtx" / "system.evtx").read_bytes())
    bad = corpus / "evtx_truncated.evtx"
    proc = cli("timeline", good, bad, "-o", tmp_path / "out", "--no-html")
    check_clean_failure(proc, bad, codes=(3,))
    with open(tmp_path / "out" / "inputs.csv", newline="", encoding="utf-8") as fh:
        rows = {Path(r["source"]).name: r for r in csv.DictReader(fh)}
    assert int(rows["good.evtx"]["records"]) == sum(clean_counts)
    assert int(rows[bad.name]["records"]) == sum(clean_counts[:3])


@pytest.mark.parametrize("parser", ["evtx", "python-evtx"])
def test_regression_file_cut_inside_its_header(cli, tmp_path, parser):
    """Fuzzer find: 'ElfFile' and 2 KiB, shorter than the 4 KiB header; the Rust parser's
    constructor raised OSError out of the reader (traceback)."""
    path = tmp_path / "short.evtx"
    path.write_bytes((REGRESSIONS / "evtx-short-header.bin").read_bytes()[1:])
    proc = cli("timeline", path, "-o", tmp_path / "out", "--no-html", "--parser", parser)
    check_clean_failure(proc, path, codes=(2,))


def test_regression_record_without_event_element(tmp_path):
    """Fuzzer find: a damaged record decoding to {"Event": null} (or <Event>text</Event>) raised
    AttributeError out of raw_from_json; it is a warning and every other record is read."""
    from hpforensics.evtx.readers import read_evtx
    from hpforensics.evtx.records import ReadStats

    path = tmp_path / "empty-event.evtx"
    path.write_bytes((REGRESSIONS / "evtx-empty-event-element.bin").read_bytes()[1:])
    stats = ReadStats(source=str(path))
    records = list(read_evtx(str(path), stats, relevant_only=False))
    assert len(records) == 24  # every record but the empty one (and the damaged tail)
    assert any("without an <Event> element" in w for w in stats.warnings)


@pytest.mark.timeout(60)
def test_regression_string_table_loop_python_evtx(cli, tmp_path):
    """Fuzzer find (hang): a chunk whose string-table chain points back to itself made python-evtx
    loop forever (`timeline --parser python-evtx` never returned); the chunk is skipped with a
    warning naming the node's offset, and the default parser still reads the file."""
    path = tmp_path / "loop.evtx"
    path.write_bytes((REGRESSIONS / "evtx-string-table-loop.bin").read_bytes()[1:])
    proc = cli("timeline", path, "-o", tmp_path / "py", "--no-html", "--parser", "python-evtx",
               timeout=50)
    check_clean_failure(proc, path, codes=(2, 3))
    from hpforensics.evtx.readers import read_python_evtx
    from hpforensics.evtx.records import ReadStats

    stats = ReadStats(source=str(path))
    assert list(read_python_evtx(str(path), stats, relevant_only=False)) == []
    assert any("at offset 0x1" in w and "loops back on itself" in w for w in stats.warnings)
    proc = cli("timeline", path, "-o", tmp_path / "rs", "--no-html", timeout=50)
    check_clean_failure(proc, path, codes=(3,))


def test_python_evtx_loop_check_passes_real_logs(shared_data):
    from hpforensics.evtx.readers import table_loop

    for log in sorted((shared_data / "evtx").glob("*.evtx")):
        data = log.read_bytes()
        for off in range(cc.EVTX_HEADER, len(data) - cc.EVTX_CHUNK + 1, cc.EVTX_CHUNK):
            assert table_loop(data[off:off + cc.EVTX_CHUNK]) is None, (log.name, hex(off))
