"""The columns of every record the memory side writes, taken once from the result dataclasses.

CSV and JSON carry every field of the record in declaration order, whichever source wrote it (a
memory image, a live scan, `pe diff`): a field a source cannot fill is empty, never missing. The
console tables and the Volatility TreeGrids show named subsets of the same fields, with titles
and kinds from here, so a column is named and typed in one place.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from hpforensics.live.space import ProcessSummary
from hpforensics.memimage.patchstate import HotpatchImageRecord
from hpforensics.model import Finding, ModuleSummary, YaraMatch
from hpforensics.cells import HEX_FIELDS


def fields_of(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


FINDING = fields_of(Finding)
MODULE = fields_of(ModuleSummary)
YARA = fields_of(YaraMatch)
HOTPATCH_IMAGE = fields_of(HotpatchImageRecord)
PROCESS = fields_of(ProcessSummary)


def view(full: Sequence[str], *names: str) -> tuple[str, ...]:
    """`names` in their own order, each checked against the record's fields (at import, so a
    renamed field breaks the build, not a report)."""
    missing = [n for n in names if n not in full]
    if missing:
        raise KeyError(f"not fields of the record: {', '.join(missing)}")
    return names


# Narrow views for a terminal; the files carry every column above.
FINDING_TABLE = view(
    FINDING, "pid", "process", "module", "address", "rva", "size", "verdict", "reason",
    "original_disassembly", "disassembly", "branch_target", "target_owner", "patch_image",
    "sequence", "kb")
MODULE_TABLE = view(
    MODULE, "pid", "process", "module", "module_base", "reference", "pages_total",
    "pages_verified", "pages_loader", "pages_skipped", "pages_hotpatched", "pages_unexplained",
    "pages_unverified", "pages_unavailable", "status")
EXTENSION_TABLE = view(
    MODULE, "extension_pages", "extension_unexplained", "hpat_stubs_used", "hpat_stubs_free")
YARA_TABLE = view(
    YARA, "pid", "process", "module", "address", "namespace", "rule", "matched", "verdict")
PROCESS_TABLE = PROCESS[1:]  # every field but the source, which the header line names

# The TreeGrids of the Volatility plugins (windows.hotpatch.*): one row per record.
REGIONS_GRID = view(
    FINDING, "pid", "process", "module", "address", "rva", "size", "verdict", "branch_target",
    "target_owner", "patch_image", "sequence", "kb", "original_disassembly", "disassembly",
    "reason")
VERIFY_GRID = view(
    MODULE, "pid", "process", "module", "module_base", "size", "reference", "pages_total",
    "pages_verified", "pages_loader", "pages_hotpatched", "pages_unexplained",
    "pages_unverified", "pages_unavailable", "extension_pages", "extension_unexplained",
    "hpat_stubs_used", "hpat_stubs_free", "extension_content", "status")
IMAGES_GRID = view(
    HOTPATCH_IMAGE, "pid", "process", "base_module", "base_address", "base_timestamp",
    "base_checksum", "patch_path", "patch_address", "sequence", "functions_patched",
    "functions_total", "kb", "loader_state", "peb_images_hotpatched", "status", "flagged",
    "note", "recognised_by")

_TITLES = {
    "pid": "PID", "rva": "RVA", "kb": "KB", "function_rva": "Function RVA",
    "hpat_stubs_used": "HPAT stubs used", "hpat_stubs_free": "HPAT stubs free",
    "original_disassembly": "Original code", "disassembly": "Code now",
    "pages_total": "Pages", "pages_verified": "Verified", "pages_loader": "Loader",
    "pages_hotpatched": "Hotpatched", "pages_unexplained": "Unexplained",
    "pages_unverified": "Unverified", "pages_unavailable": "Unavailable",
    "pages_skipped": "Skipped", "extension_content": "Extension",
    "module_base": "Base", "base_module": "Base module", "base_address": "Base",
    "base_timestamp": "TimeDateStamp", "base_checksum": "CheckSum",
    "patch_path": "Patch image", "functions_patched": "Patched functions",
    "functions_total": "Functions", "peb_images_hotpatched": "PEB hotpatched",
}
# Fields whose type does not say they are addresses, yet are (shown in hex everywhere).
_HEX = HEX_FIELDS | {"base_address", "patch_address", "base_timestamp", "base_checksum",
                     "patch_base"}


def title(name: str) -> str:
    return _TITLES.get(name) or name.replace("_", " ").capitalize()


def kind(cls: type, name: str) -> str:
    """'hex', 'int', 'bool' or 'str': how a TreeGrid or a typed reader should take the field."""
    if name in _HEX:
        return "hex"
    annotation = str(next(f.type for f in dataclasses.fields(cls) if f.name == name))
    for word in ("bool", "int"):
        if annotation.split("|")[0].strip() == word:
            return word
    return "str"

