"""The import contract: the package's layers only import downward and its subpackages form no
cycle. Imports inside functions count too (they hide cycles, they do not break them).

The layers, lowest first, are the ones docs/architecture.md draws; a module not listed fails the
test, so a new subpackage has to be placed on purpose.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "hpforensics"

# Each layer may import itself and any layer before it, never one after it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("hpforensics", "hpforensics._pagehash", "hpforensics._evtxscan",
              "hpforensics._rowfmt", "hpforensics.errors", "hpforensics.evidence",
              "hpforensics.model", "hpforensics.space", "hpforensics.pagehash",
              "hpforensics.pagehash_ref", "hpforensics.outpaths", "hpforensics.custody",
              "hpforensics.cells", "hpforensics.csvsafe", "hpforensics.textsafe",
              "hpforensics.staging", "hpforensics.disasm", "hpforensics.data")),
    ("pe", ("hpforensics.pe",)),
    ("reference", ("hpforensics.reference",)),
    ("kb", ("hpforensics.kb",)),
    ("classify", ("hpforensics.classify",)),
    ("engine", ("hpforensics.engine", "hpforensics.yarascan", "hpforensics.scan_inputs")),
    ("sources", ("hpforensics.sources", "hpforensics.memimage", "hpforensics.live",
                 "hpforensics.evtx")),
    ("timeline", ("hpforensics.timeline",)),
    ("report", ("hpforensics.report",)),
    ("apps", ("hpforensics.runs", "hpforensics.fleet", "hpforensics.cli",
              "hpforensics.__main__")),
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index): the longest prefix wins
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # the package itself names only its __init__, not everything below it
            below = prefix != "hpforensics" and module.startswith(prefix + ".")
            if module == prefix or below:
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]


def subpackage(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return module  # a top-level module is its own unit


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_imports(root: Path = PACKAGE) -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every hpforensics import in the package, at any depth."""
    edges = []
    for path in sorted(root.rglob("*.py")):
        me = _module_name(path)
        is_init = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = me.split(".") if is_init else me.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" for a in node.names]
                # `from pkg import module` names the module; `from mod import func` the module
                targets = [n if (REPO / n.replace(".", "/")).with_suffix(".py").exists()
                           or (REPO / n.replace(".", "/")).is_dir() else target for n in names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == "hpforensics":
                    edges.append((me, target, node.lineno))
    return edges


def upward_imports(edges: list[tuple[str, str, int]]) -> list[str]:
    bad = []
    for src, dst, line in edges:
        a, b = layer_of(src), layer_of(dst)
        if a is not None and b is not None and b > a:
            bad.append(f"{src}:{line} imports {dst} ({LAYERS[a][0]} -> {LAYERS[b][0]})")
    return bad


def subpackage_cycles(edges: list[tuple[str, str, int]]) -> list[list[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst, _ in edges:
        s, d = subpackage(src), subpackage(dst)
        if s != d:
            graph[s].add(d)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


EDGES = package_imports()


def test_every_module_has_a_layer() -> None:
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    assert sorted(m for m in modules if layer_of(m) is None) == []


def test_no_import_goes_up_a_layer() -> None:
    assert upward_imports(EDGES) == []


def test_no_cycle_between_subpackages() -> None:
    assert subpackage_cycles(EDGES) == []


def test_package_never_imports_plugins_or_tests() -> None:
    assert [e for e in EDGES if e[1].startswith(("plugins", "tests"))] == []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert (node.module or "").split(".")[0] not in {"plugins", "tests"}, path


@pytest.mark.parametrize("edges, upward, cycles", [
    # the checker itself: an engine module reaching into report is upward, a pair is a cycle
    ([("hpforensics.engine", "hpforensics.report.render", 1)],
     ["hpforensics.engine:1 imports hpforensics.report.render (engine -> report)"], []),
    ([("hpforensics.kb.a", "hpforensics.reference.b", 1),
      ("hpforensics.reference.b", "hpforensics.kb.c", 2)],
     ["hpforensics.reference.b:2 imports hpforensics.kb.c (reference -> kb)"],
     [["kb", "reference"]]),
    ([("hpforensics.cli.app", "hpforensics.pe.image", 3)], [], []),
    # a module the table does not place is no layer at all (the every-module test catches it)
    ([("hpforensics.newthing", "hpforensics.report.render", 4)], [], []),
])
def test_the_checker_sees_what_it_should(edges, upward, cycles) -> None:
    assert upward_imports(edges) == upward
    assert subpackage_cycles(edges) == cycles


def test_an_unplaced_module_has_no_layer() -> None:
    assert layer_of("hpforensics.newthing") is None and layer_of("hpforensics") == 0
    assert layer_of("hpforensics.report.schema") == layer_of("hpforensics.report")
