"""Fleet fixtures: one local Dask cluster (2 worker processes) for every fleet test, and a
small synthetic fleet from samples/build_fleet.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def load_build_fleet():
    if str(SAMPLES) not in sys.path:
        sys.path.insert(0, str(SAMPLES))
    import build_fleet

    return build_fleet


@pytest.fixture(scope="session")
def fleet_client():
    """A LocalCluster as `--workers 2` starts it (a start costs seconds: shared)."""
    from hpforensics.fleet.cluster import ClusterSpec, open_client

    with open_client(ClusterSpec(workers=2)) as client:
        yield client


@pytest.fixture(scope="session")
def small_fleet(tmp_path_factory) -> Path:
    """10 devices x 5 months, every scenario; fleet-plan.csv beside the device folders."""
    bf = load_build_fleet()
    out = tmp_path_factory.mktemp("fleet") / "fleet"
    bf.build(out, 10, bf.run_months(5), seed=11, per_scenario=1)
    return out
