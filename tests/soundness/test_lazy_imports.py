"""Imports inside functions only with their reason: each one (or the block of import lines it
opens) carries a comment on its line or the line above, saying why it is not at module level
(CLI start-up, a heavy optional dependency, a cycle it would form)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def unexplained(source: str) -> list[int]:
    """Lines of in-function imports with no reason comment."""
    lines = source.splitlines()
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            i = node.lineno - 1
            if "#" in lines[i]:
                continue
            j = i  # back to the first of a block of import lines
            while (j > 0 and lines[j - 1].lstrip().startswith(("import ", "from "))
                   and "#" not in lines[j - 1]):
                j -= 1
            above = lines[j - 1].strip() if j > 0 else ""
            if above.startswith("#") or (above.startswith(("import ", "from ")) and "#" in above):
                continue
            found.append(node.lineno)
    return sorted(set(found))


def test_every_in_function_import_says_why() -> None:
    missing = [f"{path.relative_to(REPO)}:{line}"
               for path in sorted((REPO / "hpforensics").rglob("*.py"))
               for line in unexplained(path.read_text(encoding="utf-8"))]
    assert not missing, "in-function imports without a reason comment: " + ", ".join(missing)


def test_the_check_catches_an_import_without_a_reason() -> None:
    source = (
        "def f():\n"
        "    # lazy: heavy optional dependency\n"
        "    import yara\n"
        "    import json\n"  # same block: covered by the comment above the first
        "\n"
        "    import csv\n"  # a new block without a reason
        "    return yara, json, csv\n"
        "def g():\n"
        "    from os import path  # lazy: start-up\n"
        "    return path\n"
    )
    assert unexplained(source) == [6]
