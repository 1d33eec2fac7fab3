"""`hpforensics manifest import|show`: KB manifests (the files an update ships)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from hpforensics.errors import ExitCode, UsageError

manifest_app = typer.Typer(
    help="KB manifests: which files, PE identities and page hashes an update ships.",
    no_args_is_help=True)

FILE_COLUMNS = ("name", "version", "architecture", "size", "timestamp", "size_of_image", "checksum",
                "hotpatch_bases", "pages", "sha256", "path")


@manifest_app.command("import")
def import_cmd(
    source: Path = typer.Argument(
        ..., help="File-information .csv, .mum/.manifest XML, or a folder of binaries."),
    output: Path = typer.Option(..., "-o", "--output", help="Manifest JSON to write."),
    kb: List[str] = typer.Option(  # noqa: UP006
        [], "--kb", help="KB of the update (repeat for KBs shipping the same files)."),
    no_pages: bool = typer.Option(False, "--no-pages", help="Folder import: skip page hashes."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Worker processes."),  # noqa: UP007
) -> None:
    """Build a manifest from SOURCE; every skipped input is listed with the reason."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.kb.importers import import_source

    manifest = import_source(source, kb, pages=not no_pages, workers=workers)
    manifest.save(output)
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.custody import custody_block, sidecar_path, write_custody

    write_custody(sidecar_path(output), custody_block(
        "manifest import", [source], {"kb": list(kb), "pages": not no_pages}))
    for s in manifest.skipped:
        typer.echo(f"skipped {s.item}: {s.reason}", err=True)
    errors = sum(s.error for s in manifest.skipped)
    typer.echo(f"{output}: {manifest.kb}, {len(manifest.files)} file(s), "
               f"{len(manifest.skipped)} skipped" + (f" ({errors} unreadable)" if errors else ""))
    if errors:
        raise typer.Exit(int(ExitCode.PARTIAL))


@manifest_app.command("show")
def show_cmd(
    target: str = typer.Argument(..., help="A manifest file, or a KB number to find in --dir."),
    directory: List[Path] = typer.Option(  # noqa: UP006
        [], "--dir", help="Folders of manifests to search for a KB."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, jsonl or csv."),
) -> None:
    """Show a manifest's update and files."""
    # lazy: CLI start-up (a command imports only what it runs)
    from hpforensics.kb.calendar import normalize_kb
    from hpforensics.kb.manifest import load
    from hpforensics.kb.manifest_index import ManifestIndex
    from hpforensics.report import FORMATS, render

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    if Path(target).is_file():
        manifest = load(Path(target))
    else:
        kb = normalize_kb(target)
        if not kb:
            raise UsageError(f"{target}: neither a manifest file nor a KB number")
        found = [m for m in ManifestIndex.load(directory or [Path(".")]).manifests if kb in m.kbs]
        if not found:
            searched = ", ".join(map(str, directory or [Path(".")]))
            raise UsageError(f"no manifest for {kb} in {searched}")
        manifest = found[0]
    if fmt == "json":
        json.dump(manifest.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    title = " ".join(x for x in (manifest.kb, manifest.kind or "", manifest.release_date or "",
                                 f"build {manifest.os_build}" if manifest.os_build else "",
                                 manifest.product or "") if x)
    render([_file_row(f) for f in manifest.files], fmt, columns=FILE_COLUMNS, title=title)


def _file_row(f) -> dict:
    return {
        "name": f.name, "version": f.version, "architecture": f.architecture, "size": f.size,
        "timestamp": f"{f.pe.timestamp:#010x}" if f.pe else None,
        "size_of_image": f"{f.pe.size_of_image:#x}" if f.pe else None,
        "checksum": f"{f.pe.checksum:#x}" if f.pe else None,
        "hotpatch_bases": " ".join(f"{b.timestamp:#010x}/{b.checksum:#x}" for b in f.hotpatch.bases)
        if f.hotpatch else None,
        "pages": len(f.pages.digests) if f.pages else None,
        "sha256": f.sha256, "path": f.path,
    }


def register(app: typer.Typer) -> None:
    app.add_typer(manifest_app, name="manifest")
