"""One memory image analysed end to end, as `dump analyze` does: open, analyse, write outputs.

The CLI and the fleet runner both call `run_dump` with a typed `DumpOptions`; neither reaches
into the other. Progress is the caller's business (two callbacks), so a worker stays silent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from hpforensics.memimage.analyze import Analysis


@dataclass
class DumpOptions:
    symbols: list[Path] = field(default_factory=list)
    reference: list[Path] = field(default_factory=list)
    manifest: Optional[Path] = None
    store: Optional[Path] = None
    pid: list[int] = field(default_factory=list)
    yara: Optional[Path] = None
    yara_all: bool = False


@dataclass
class DumpRun:
    analysis: Analysis
    written: list[Path]

    @property
    def damaged(self) -> bool:
        return bool(self.analysis.damaged)


OpenProgress = Callable[[float, str], None]  # (percent of automagic, what it is doing)
StepProgress = Callable[[str, int, int], None]  # (address space, done, total)


def run_dump(image: Path, outdir: Path, opts: DumpOptions, *,
             open_progress: OpenProgress | None = None,
             step: StepProgress | None = None) -> DumpRun:
    from hpforensics.custody import custody_block
    from hpforensics.evidence import BackgroundHash
    from hpforensics.textsafe import shown
    from hpforensics import scan_inputs as options
    from hpforensics.memimage.analyze import analyze
    from hpforensics.report.memory import write_outputs
    from hpforensics.memimage.session import check_truncation, open_image

    refs = options.references(opts.reference, opts.store, opts.manifest)
    kb = options.kb_lookup(opts.manifest, opts.store)
    rules = options.yara_rules(opts.yara)
    session = open_image(image, opts.symbols, progress=open_progress)
    image_hash = BackgroundHash(image)  # after open_image: a refused image is not hashed
    result = analyze(session.context, session.kernel, source=f"dump:{image.name}",
                     references=refs, kb_lookup=kb, pids=opts.pid or None, progress=step,
                     check_tables=lambda dtb: check_truncation(session, dtb, user=True),
                     yara=rules, yara_all=opts.yara_all)
    inputs = {"image": str(image), "symbols": [str(s) for s in opts.symbols],
              "reference": [str(r) for r in opts.reference],
              "manifest": str(opts.manifest) if opts.manifest else None,
              "store": str(opts.store) if opts.store else None,
              "yara": str(opts.yara) if opts.yara else None, "yara_all": opts.yara_all}
    custody = custody_block("dump analyze", [image, opts.manifest, opts.store, opts.yara],
                            {"pid": sorted(opts.pid)}, references=[*opts.symbols, *opts.reference],
                            hashed={shown(image): image_hash.result()})
    return DumpRun(result, write_outputs(result, outdir, inputs, custody))
