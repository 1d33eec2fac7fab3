"""`hpforensics pe diff`: the whole engine on files, for a module carved from memory by hand.

Thin: parses the options into a `CarvedModule` (hpforensics.sources.carved: the carved module,
patch images laid out at their bases, raw regions such as an HPAT) and renders the result.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import UsageError
from hpforensics.textsafe import clean

FORMATS = ("table", "json", "csv")
_NAME_BASE = re.compile(r"@(?:0x)?([0-9a-fA-F]+)\.bin$")


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text, 16)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not an address") from None


def split_at(spec: str, what: str, need_base: bool) -> tuple[Path, Optional[int]]:
    """"FILE@0xBASE" -> (FILE, BASE); the base may be left out (None), or read from a
    `name@<hex>.bin` file name as the samples and the memory-image dumper write them."""
    path, _, tail = spec.rpartition("@")
    if path and re.fullmatch(r"(0x)?[0-9a-fA-F]+", tail):
        return Path(path), _int(tail, what)
    m = _NAME_BASE.search(spec)
    if m:
        return Path(spec), int(m.group(1), 16)
    if need_base:
        raise UsageError(f"{what} {spec!r}: give the base as FILE@0xADDRESS")
    return Path(spec), None


def _module_spec(spec: str) -> tuple[str, int, int]:
    number = r"(0x[0-9a-fA-F]+|[0-9a-fA-F]+)"
    m = re.fullmatch(rf"([^@]+)@{number}(?::{number})?", spec)
    if not m:
        raise UsageError(f"--module {spec!r}: expected NAME@0xBASE[:0xSIZE]")
    size = _int(m.group(3), "--module size") if m.group(3) else 0x1000
    return m.group(1), _int(m.group(2), "--module base"), size


def run_diff(disk: Path, memory: Path, base: int, patches: list[str], regions: list[str],
             modules: list[str], include_loader: bool):
    """Parse the option specs and verify the carved module (hpforensics.sources.carved)."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.sources.carved import CarvedModule, diff_carved

    return diff_carved(CarvedModule(
        disk=disk, memory=memory, base=base,
        patches=[split_at(spec, "--patch", need_base=False) for spec in patches],
        regions=[split_at(spec, "--region", need_base=True) for spec in regions],  # type: ignore[misc]
        modules=[_module_spec(spec) for spec in modules]), include_loader=include_loader)


def register_diff(pe_app: typer.Typer) -> None:
    @pe_app.command("diff")
    def diff(
        disk: Path = typer.Option(..., "--disk", help="The module's on-disk file (DLL, EXE, SYS)."),
        memory: Path = typer.Option(
            ..., "--memory", help="The module carved from memory (loaded layout)."),
        base: str = typer.Option(
            ..., "--base", help="Address the module was loaded at, e.g. 0x7ffb12340000."),
        patch: List[str] = typer.Option(  # noqa: UP006
            [], "--patch", help="Patch image file mapped beside it: FILE[@0xBASE]."),
        region: List[str] = typer.Option(  # noqa: UP006
            [], "--region", help="Raw memory (HPAT, private region): FILE@0xBASE."),
        module: List[str] = typer.Option(  # noqa: UP006
            [], "--module", help="Another mapped image, no bytes: NAME@0xBASE[:0xSIZE]; "
                                 "given any, IAT and CFG pointers must lead into one."),
        fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
        out: Optional[Path] = typer.Option(  # noqa: UP007
            None, "--output", "-o", help="Write here instead of stdout."),
        show_loader: bool = typer.Option(
            False, "--all", help="Also list loader-written differences."),
    ) -> None:
        """Verify a carved module against its file: loader / hotpatch / unexplained per change."""
        # lazy: CLI start-up (a command imports only what it runs)
        from hpforensics.cells import to_row
        from hpforensics.report import schema
        from hpforensics.report.render import render_to
        from hpforensics.staging import staged_file

        if fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
        result = run_diff(disk, memory, _int(base, "--base"), patch, region, module, show_loader)
        if fmt == "json":
            doc = {"modules": [to_row(m) for m in result.modules],
                   "findings": [to_row(f) for f in result.findings], "warnings": result.warnings,
                   "custody": _custody(disk, memory, base, patch, region, module, show_loader)}
            text = json.dumps(doc, indent=2, default=str) + "\n"
            if out is None:
                typer.echo(text, nl=False)
            else:
                with staged_file(out) as tmp:  # in place only when whole
                    tmp.write_text(text, encoding="utf-8")
        elif fmt == "csv" and out is None:
            render_to(None, result.findings, "csv", columns=schema.FINDING)
        elif fmt == "csv" and out is not None:
            # lazy: CLI start-up (a command imports only what it runs)
            from hpforensics.custody import sidecar_path, write_custody

            with staged_file(out) as tmp:
                render_to(tmp, result.findings, "csv", columns=schema.FINDING)
            with staged_file(sidecar_path(out)) as tmp:
                write_custody(tmp, _custody(disk, memory, base, patch, region, module,
                                            show_loader))
        else:
            buf = io.StringIO()
            # lazy: CLI start-up (a command imports only what it runs)
            from hpforensics.report import render

            extended = any(m.extension_pages for m in result.modules)
            modules = [c for c in schema.MODULE_TABLE if c not in ("pid", "process")]
            render(result.modules, "table", buf, title="Module",
                   columns=[*modules[:-1], *schema.EXTENSION_TABLE, *modules[-1:], "section_tails"]
                   if extended else [*modules, "section_tails"])
            render(result.findings, "table", buf, title="Changes",
                   columns=[c for c in schema.FINDING_TABLE
                            if c not in ("pid", "process", "module")])
            if out is None:
                typer.echo(buf.getvalue(), nl=False)
            else:
                with staged_file(out) as tmp:
                    tmp.write_text(buf.getvalue(), encoding="utf-8")
        for w in result.warnings:
            typer.echo(f"hpforensics: warning: {clean(w)}", err=True)


def _custody(disk, memory, base, patch, region, module, show_loader) -> dict:
    """Chain-of-custody block: every file the diff read, and the options that shaped it."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.custody import custody_block

    files = [disk, memory, *(split_at(p, "--patch", False)[0] for p in patch),
             *(split_at(r, "--region", True)[0] for r in region)]
    return custody_block("pe diff", files, {"base": base, "patch": list(patch),
                                            "region": list(region), "module": list(module),
                                            "all": show_loader})
