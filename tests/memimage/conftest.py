"""Shared, module-scoped runs over the committed sample image (Volatility is slow: run once)."""
from __future__ import annotations

import json

import pytest

from memimage_helpers import IMAGE, PLAN, SAMPLES, SYMBOLS


@pytest.fixture(scope="session")
def plan() -> dict:
    return json.loads(PLAN.read_text())


@pytest.fixture(scope="session")
def expected_findings(plan) -> set[tuple]:
    return {(f["pid"], f["module"], int(f["rva"], 16), f["size"], f["verdict"])
            for f in plan["expected_findings"]}


@pytest.fixture(scope="session")
def expected_images(plan) -> set[tuple]:
    return {(i["pid"], i["base_module"], i["patch_image"], i["status"], i["flagged"],
             i["functions_patched"], i["functions_total"]) for i in plan["expected_images"]}


@pytest.fixture(scope="module")
def library_analysis():
    """The library path: open the image with the Volatility API and analyse it once."""
    from hpforensics import scan_inputs as options
    from hpforensics.memimage.analyze import analyze
    from hpforensics.memimage.session import open_image

    session = open_image(IMAGE, [SYMBOLS])
    return analyze(session.context, session.kernel, source=f"dump:{IMAGE.name}",
                   references=options.references([SAMPLES / "pe"]))
