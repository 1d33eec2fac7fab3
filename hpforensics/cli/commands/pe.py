"""`hpforensics pe ...`: look at PE files. `pe info` is here; `pe diff` joins the same sub-app."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import ExitCode, InputError, UsageError
from hpforensics.textsafe import clean

pe_app = typer.Typer(
    help="PE files: hotpatch records, load config, dynamic relocations, CFG, CodeView.",
    no_args_is_help=True)

INFO_FORMATS = ("table", "json")
FUNCTION_COLUMNS = ("patch_file", "sequence", "base_rva", "patch_rva", "name", "base_file")


def _hexify(value):
    """JSON for analysts: addresses, stamps and checksums as hex strings."""
    if isinstance(value, dict):
        return {k: (f"{v:#x}" if isinstance(v, int) and not isinstance(v, bool) and _is_hex(k)
                    else _hexify(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_hexify(v) for v in value]
    if isinstance(value, str):  # a file name: any bytes, shown as every output shows them
        return clean(value)
    return value


def _is_hex(key: str) -> bool:
    return key.endswith(("rva", "timestamp", "checksum", "image_base", "flags", "size_of_image"))


@pe_app.command("info")
def info(
    files: List[Path] = typer.Argument(..., help="PE files (DLL, EXE, SYS), base or patch images."),  # noqa: UP006
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    out: Optional[Path] = typer.Option(  # noqa: UP007
        None, "-o", "--output", help="Write the JSON here (with a .custody.json beside it)."),
) -> None:
    """Is it a hotpatch image, what it patches (base TimeDateStamp/CheckSum, sequence, functions),
    is a base hotpatch-capable, and its load config / dynamic relocation / CFG / CodeView
    summary."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.pe.image import PEImage
    from hpforensics.pe.summary import BaseFinder, describe, name_functions
    from hpforensics.report import render

    if fmt not in INFO_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(INFO_FORMATS)}")
    if out is not None and fmt != "json":
        raise UsageError("--output writes JSON: add --format json")
    images, errors = [], []
    for path in files:
        try:
            images.append(PEImage.from_file(path))
        except InputError as exc:
            errors.append(exc)
    finder = BaseFinder(images)
    infos = []
    for image in images:
        i = describe(image)
        name_functions(i, image, finder)
        infos.append(i)
    if fmt == "json" and out is not None:
        # lazy: CLI start-up (a command imports only what it runs)
        from hpforensics.custody import custody_block, sidecar_path, write_custody
        from hpforensics.staging import staged_file

        with staged_file(out) as tmp:  # in place only when whole
            tmp.write_text(json.dumps([_hexify(dataclasses.asdict(i)) for i in infos],
                                      indent=2) + "\n", encoding="utf-8")
        with staged_file(sidecar_path(out)) as tmp:
            write_custody(tmp, custody_block("pe info", files, {"format": fmt}))
    elif fmt == "json":
        json.dump([_hexify(dataclasses.asdict(i)) for i in infos], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif infos:
        render([i.summary_row() for i in infos], "table", title="PE images")
        functions = [f for i in infos for f in i.functions]
        if functions:
            rows = [{**dataclasses.asdict(f), "base_rva": f"{f.base_rva:#x}",
                     "patch_rva": f"{f.patch_rva:#x}"} for f in functions]
            render(rows, "table", columns=FUNCTION_COLUMNS,
                   title="Functions replaced by hotpatch images")
    for error in errors:
        typer.echo(f"hpforensics: error: {error}", err=True)
    if errors:
        raise typer.Exit(int(ExitCode.PARTIAL if infos else ExitCode.USER_ERROR))


# `pe diff` (file vs memory image, through the engine) is registered on `pe_app` by its own
# module section below this line; keep `info` above self-contained.
from hpforensics.cli.pe_diff import register_diff  # noqa: E402 - engine helper's command

register_diff(pe_app)


def register(app: typer.Typer) -> None:
    app.add_typer(pe_app, name="pe")
