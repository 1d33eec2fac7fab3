"""Fuzz the KB-manifest importers: Microsoft file-information CSV, servicing XML (.mum /
component .manifest) and the versioned manifest JSON (schema validation + loading), each then
serialised back as the CLI would.

Byte 0 picks the format (0: CSV, 1: .mum XML, 2: manifest JSON); the rest is the file.
Allowed outcome for bad input: InputError / UsageError (the CLI's one-line errors).
"""
from __future__ import annotations

from pathlib import Path

import _harness

with _harness.instrumented():
    from hpforensics.errors import HPFError
    from hpforensics.kb import manifest as kb_manifest
    from hpforensics.kb.importers import components, import_source, msfileinfo  # noqa: F401 - instrumented here

FILES = {0: _harness.ScratchFile("-KB5052105.csv"), 1: _harness.ScratchFile(".mum"),
         2: _harness.ScratchFile(".json")}


def test_one(data: bytes) -> None:
    if not data:
        return
    kind = data[0] % 3
    path = Path(FILES[kind].write(data[1:]))
    try:
        if kind == 2:
            m = kb_manifest.load(path)
        else:
            m = import_source(path, ["KB5052105"])
        kb_manifest.validate(m.to_json(), path)  # what we write must be what we accept
    except HPFError:
        return


if __name__ == "__main__":
    _harness.main(test_one)
