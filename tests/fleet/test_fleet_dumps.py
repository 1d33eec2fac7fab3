"""`hpforensics dump analyze` over several images on Dask: each dump's outputs are the single
run's, the roll-ups carry every dump, and a dump that fails is retried once and listed."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "samples" / "win11-24h2-hotpatch.raw"
ARGS = ["--symbols", REPO / "samples" / "symbols", "--reference", REPO / "samples" / "pe",
        "--manifest", REPO / "samples" / "memimage-kb.json", "-q"]
TABLES = ["findings.csv", "modules.csv", "hotpatch-images.csv", "yara.csv"]


def _report(path: Path, name: str = IMAGE.name) -> dict:
    """report.json less what names this run or this file (custody, image path, source)."""
    doc = json.loads(path.read_text().replace(f'"dump:{name}"', f'"dump:{IMAGE.name}"'))
    doc.pop("custody", None)  # times and hashes of this run
    doc["inputs"].pop("image")
    return doc


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_dumps_on_the_cluster_match_single_runs(cli, fleet_client, tmp_path):
    import pyarrow.dataset as ds

    copy, cut = tmp_path / "copy.raw", tmp_path / "cut.raw"
    shutil.copyfile(IMAGE, copy)
    cut.write_bytes(IMAGE.read_bytes()[:4 << 20])  # truncated: page tables missing
    single, fleet = tmp_path / "single", tmp_path / "fleet"
    p1 = cli("dump", "analyze", IMAGE, *ARGS, "-o", single)
    assert p1.returncode == 0, p1.stderr
    p2 = cli("dump", "analyze", IMAGE, copy, cut, *ARGS, "-o", fleet,
             "--scheduler", fleet_client.scheduler.address)
    assert p2.returncode == 3, p2.stderr  # one image failed: partial
    assert "2/3 image(s) analysed" in p2.stderr and "Traceback" not in p2.stderr
    for name in (IMAGE.name, copy.name):
        for table in TABLES:
            got, want = _rows(fleet / name / table), _rows(single / table)
            # the same rows; only the source column names the image each came from
            assert [r.pop("source") for r in got] == [f"dump:{name}"] * len(got)
            assert got == [{k: v for k, v in r.items() if k != "source"} for r in want], table
        assert _report(fleet / name / "report.json", name) == _report(single / "report.json")
    with open(fleet / "failures.csv", newline="") as fh:
        failed = list(csv.DictReader(fh))
    assert [(Path(f["task"]).name, f["kind"], f["attempts"]) for f in failed] == [
        ("cut.raw", "exception", "2")]
    assert "truncated" in failed[0]["error"]
    with open(fleet / "dumps.csv", newline="") as fh:
        dumps = {r["dump"]: r for r in csv.DictReader(fh)}
    assert set(dumps) == {IMAGE.name, copy.name}
    with open(single / "findings.csv", newline="") as fh:
        findings = list(csv.DictReader(fh))
    assert {int(d["findings"]) for d in dumps.values()} == {len(findings)} and findings
    hot = sum(1 for f in findings if f["verdict"] == "hotpatch")
    assert {int(d["hotpatch"]) for d in dumps.values()} == {hot}
    with open(fleet / "findings.csv", newline="") as fh:
        rolled = list(csv.DictReader(fh))
    assert len(rolled) == 2 * len(findings)
    def same(r: dict[str, str]) -> str:  # what names the dump differs, the rest may not
        return repr([v for k, v in r.items() if k not in ("dump", "source")])

    assert sorted(same(r) for r in rolled if r["dump"] == copy.name) == sorted(
        same(r) for r in findings)
    data = ds.dataset(fleet / "parquet" / "findings", format="parquet",
                      partitioning="hive").to_table()
    assert sorted(set(data.column("device").to_pylist())) == sorted([IMAGE.name, copy.name])
    assert data.num_rows == 2 * len(findings)
