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


def _hex(value: int | None):
    return format_hints.Hex(value) if value is not None else renderers.NotAvailableValue()


def _int(value: int | None):
    return int(value) if value is not None else renderers.NotAvailableValue()


def _pid(value: int | None):
    return int(value) if value is not None else renderers.NotApplicableValue()


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
        return analyze(self.context, cfg["kernel"], source=f"dump:{location}",  # type: ignore
                       references=refs, kb_lookup=kb, pids=cfg.get("pid") or None,
                       verify=self._verify, patch_records=self._patch_records, yara=rules,
                       yara_all=bool(cfg.get("yara-all")))


class Images(_HotpatchBase, interfaces.plugins.PluginInterface):
    """Hotpatch images per process and kernel space: loader records checked against the code."""

    _verify = False
    _patch_records = True

    def _generator(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        for r in self._analysis().hotpatch_images:
            yield 0, (_pid(r.pid), r.process, r.base_path or r.base_module, _hex(r.base_address),
                      _hex(r.base_timestamp), _hex(r.base_checksum), r.patch_path,
                      _hex(r.patch_address), _int(r.sequence), r.functions_patched,
                      r.functions_total, r.kb, r.loader_state,
                      renderers.NotAvailableValue() if r.peb_images_hotpatched is None
                      else bool(r.peb_images_hotpatched), r.status, r.flagged, r.note,
                      r.recognised_by)

    def run(self) -> renderers.TreeGrid:
        return renderers.TreeGrid([
            ("PID", int), ("Process", str), ("Base module", str), ("Base", format_hints.Hex),
            ("TimeDateStamp", format_hints.Hex), ("CheckSum", format_hints.Hex),
            ("Patch image", str), ("Patch address", format_hints.Hex), ("Sequence", int),
            ("Patched functions", int), ("Functions", int), ("KB", str), ("Loader state", str),
            ("PEB hotpatched", bool), ("Status", str), ("Flagged", bool), ("Note", str),
            ("Recognised by", str),
        ], self._generator())


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
            yield 0, (_pid(f.pid), f.process, f.module, format_hints.Hex(f.address),
                      format_hints.Hex(f.rva), f.size, f.verdict.value, _hex(f.branch_target),
                      f.target_owner, f.patch_image, _int(f.sequence), f.kb, ", ".join(rules),
                      f.original_disassembly, f.disassembly, f.reason)

    def run(self) -> renderers.TreeGrid:
        return renderers.TreeGrid([
            ("PID", int), ("Process", str), ("Module", str), ("Address", format_hints.Hex),
            ("RVA", format_hints.Hex), ("Size", int), ("Verdict", str),
            ("Branch target", format_hints.Hex), ("Target owner", str), ("Patch image", str),
            ("Sequence", int), ("KB", str), ("YARA", str), ("Original code", str),
            ("Code now", str), ("Reason", str),
        ], self._generator())


class Verify(_HotpatchBase, interfaces.plugins.PluginInterface):
    """Per-module page accounting and the reference each module was checked against."""

    def _generator(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        for m in self._analysis().modules:
            yield 0, (_pid(m.pid), m.process, m.module, format_hints.Hex(m.module_base), m.size,
                      m.reference, m.pages_total, m.pages_verified, m.pages_loader,
                      m.pages_hotpatched, m.pages_unexplained, m.pages_unverified,
                      m.pages_unavailable, m.extension_pages, m.extension_unexplained,
                      m.hpat_stubs_used, m.hpat_stubs_free, m.extension_content, m.status)

    def run(self) -> renderers.TreeGrid:
        return renderers.TreeGrid([
            ("PID", int), ("Process", str), ("Module", str), ("Base", format_hints.Hex),
            ("Size", int), ("Reference", str), ("Pages", int), ("Verified", int),
            ("Loader", int), ("Hotpatched", int), ("Unexplained", int), ("Unverified", int),
            ("Unavailable", int), ("Extension pages", int), ("Extension unexplained", int),
            ("HPAT stubs used", int), ("HPAT stubs free", int), ("Extension", str),
            ("Status", str),
        ], self._generator())
