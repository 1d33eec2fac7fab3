"""Volatility 3 plugins for hotpatched Windows: windows.hotpatch.Images / Regions / Verify.

Load with `vol -p plugins ...`. Thin adapters: all analysis is in hpforensics.memimage and the
hpforensics engine; this file declares requirements and turns records into TreeGrid rows.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, List

from volatility3.framework import interfaces, renderers
from volatility3.framework.configuration import requirements
from volatility3.framework.renderers import format_hints
from volatility3.plugins.windows import modules, pslist

vollog = logging.getLogger(__name__)


def _pid(value: int | None):
    return int(value) if value is not None else renderers.NotApplicableValue()


_TYPES = {"hex": format_hints.Hex, "int": int, "bool": bool, "str": str}


def _grids() -> dict[str, tuple[type, tuple[str, ...]]]:
    # imported when a plugin runs: `vol -p plugins` imports this file for every plugin it runs
    from hpforensics.memimage.patchstate import HotpatchImageRecord
    from hpforensics.model import Finding, ModuleSummary
    from hpforensics.report import schema

    return {"images": (HotpatchImageRecord, schema.IMAGES_GRID),
            "regions": (Finding, schema.REGIONS_GRID),
            "verify": (ModuleSummary, schema.VERIFY_GRID)}


def _grid(which: str, extra: dict[int, tuple[str, type]] | None = None) -> list[tuple[str, type]]:
    """TreeGrid columns of one record kind, titled and typed by hpforensics.report.schema;
    `extra` puts a plugin's own columns (not record fields) at the given positions."""
    from hpforensics.report.schema import kind, title

    cls, names = _grids()[which]
    cols = [(title(n), _TYPES[kind(cls, n)]) for n in names]
    for at, col in sorted((extra or {}).items()):
        cols.insert(at, col)
    return cols


def _row(which: str, record: Any) -> list[Any]:
    from hpforensics.report.schema import kind

    cls, names = _grids()[which]
    cells = []
    for n in names:
        value = getattr(record, n)
        if n == "pid":
            cells.append(_pid(value))
        elif value is None:
            cells.append(renderers.NotAvailableValue())
        elif kind(cls, n) == "str":
            cells.append(value if isinstance(value, str) else str(getattr(value, "value", value)))
        else:
            cells.append(_TYPES[kind(cls, n)](value))
    return cells


class _HotpatchBase:
    """Requirements and the analysis run shared by the three plugins."""

    _required_framework_version = (2, 0, 0)
    _version = (1, 0, 0)
    _verify = True
    _patch_records = False

    @classmethod
    def get_requirements(cls) -> List[interfaces.configuration.RequirementInterface]:
        return [
            requirements.ModuleRequirement(name="kernel", description="Windows kernel",
                                           architectures=["Intel64"]),
            requirements.VersionRequirement(name="pslist", component=pslist.PsList,
                                            version=(3, 0, 0)),
            requirements.VersionRequirement(name="modules", component=modules.Modules,
                                            version=(3, 0, 0)),
            requirements.ListRequirement(name="pid", element_type=int, optional=True,
                                         description="Process IDs to include (kernel skipped)"),
            requirements.ListRequirement(name="reference", element_type=str, optional=True,
                                         description="Folders with the on-disk images"),
            requirements.StringRequirement(name="manifest", optional=True,
                                           description="KB manifest (patch file → KB)"),
            requirements.StringRequirement(name="store", optional=True,
                                           description="Page-hash store database (KB names, "
                                                       "and the reference when no file matches)"),
            requirements.StringRequirement(name="yara", optional=True,
                                           description="YARA rules for changed regions"),
            requirements.BooleanRequirement(name="yara-all", optional=True, default=False,
                                            description="Run --yara over every image region"),
        ]

    def _analysis(self):
        """The analysis, or an empty one after logging a user error (bad option, bad file)."""
        from hpforensics.errors import HPFError
        from hpforensics.memimage.analyze import Analysis

        try:
            return self._run_analysis()
        except HPFError as exc:  # one line, as the hpforensics CLI would print it
            vollog.error("hpforensics: error: %s", exc)
            return Analysis()

    def _run_analysis(self):
        # imported here: `vol -p plugins` imports this file for every plugin it runs
        from hpforensics import scan_inputs as options
        from hpforensics.memimage.analyze import analyze

        cfg = self.config  # type: ignore[attr-defined]
        manifest = Path(cfg["manifest"]) if cfg.get("manifest") else None
        store = Path(cfg["store"]) if cfg.get("store") else None
        refs = options.references([Path(d) for d in (cfg.get("reference") or [])], store,
                                  manifest)
        kb = options.kb_lookup(manifest, store)
        layer = self.context.layers[self.context.modules[cfg["kernel"]].layer_name]  # type: ignore
        location = layer.config.get("memory_layer", "")
        rules = options.yara_rules(Path(cfg["yara"]) if cfg.get("yara") and self._verify else None)
        # Volatility's own progress channel: `vol` prints it on stderr as its scanners do, and
        # mutes it with -q; other front ends draw it their way
        report = self._progress_callback  # type: ignore[attr-defined]

        def step(what: str, done: int, total: int) -> None:
            report(100.0 * done / max(total, 1), f"hotpatch: {what}")

        return analyze(self.context, cfg["kernel"], source=f"dump:{location}",  # type: ignore
                       references=refs, kb_lookup=kb, pids=cfg.get("pid") or None, progress=step,
                       verify=self._verify, patch_records=self._patch_records, yara=rules,
                       yara_all=bool(cfg.get("yara-all")))


class Images(_HotpatchBase, interfaces.plugins.PluginInterface):
    """Hotpatch images per process and kernel space: loader records checked against the code."""

    _verify = False
    _patch_records = True

    def _generator(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        for r in self._analysis().hotpatch_images:
            yield 0, tuple(_row("images", r))

    def run(self) -> renderers.TreeGrid:
        return renderers.TreeGrid(_grid("images"), self._generator())


_YARA_AT = 12  # the YARA rules hitting a range, after its KB column


class Regions(_HotpatchBase, interfaces.plugins.PluginInterface):
    """Every changed range of every image of each process and of kernel space, with its verdict."""

    @classmethod
    def get_requirements(cls) -> List[interfaces.configuration.RequirementInterface]:
        return super().get_requirements() + [
            requirements.BooleanRequirement(name="dump", default=False, optional=True,
                                            description="Write changed and expected bytes")]

    def _generator(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        analysis = self._analysis()
        hits: dict[tuple, list[tuple[int, int, str]]] = {}
        for y in analysis.yara:
            hits.setdefault((y.pid, y.module), []).append(
                (y.address, y.address + max(len(y.matched), 1), f"{y.namespace}.{y.rule}"))
        for f in analysis.findings:
            rules = sorted({name for a, b, name in hits.get((f.pid, f.module), [])
                            if a < f.address + f.size and b > f.address})
            if self.config.get("dump") and f.actual:
                from hpforensics.outpaths import safe_component

                stem = f"pid.{f.pid if f.pid is not None else 'kernel'}.{f.module}.{f.address:#x}"
                for kind, data in (("actual", f.actual), ("expected", f.expected)):
                    # module names come from the image: never let one name a path
                    with self.open(safe_component(f"{stem}.{kind}.bin")) as fh:
                        fh.write(data)
            row = _row("regions", f)
            row.insert(_YARA_AT, ", ".join(rules))
            yield 0, tuple(row)

    def run(self) -> renderers.TreeGrid:
        return renderers.TreeGrid(_grid("regions", {_YARA_AT: ("YARA", str)}),
                                  self._generator())


class Verify(_HotpatchBase, interfaces.plugins.PluginInterface):
    """Per-module page accounting and the reference each module was checked against."""

    def _generator(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        for m in self._analysis().modules:
            yield 0, tuple(_row("verify", m))

    def run(self) -> renderers.TreeGrid:
        return renderers.TreeGrid(_grid("verify"), self._generator())
