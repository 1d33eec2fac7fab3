"""Open a memory image through the Volatility 3 library: context, automagic, kernel module.

No shell-out: the same framework objects `vol` builds. Symbol directories are put first on
volatility3.symbols.__path__ and the framework runs offline (no symbol download attempts), so a
missing symbol table fails fast with one message naming the PDB GUID/age and where to put it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hpforensics.errors import InputError
from hpforensics.evidence import check_regular

log = logging.getLogger(__name__)

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"
_DTB_BAND = (0x150000, 0x2A0000)  # where Windows 10+ places the kernel DTB (Volatility's band)


@dataclass
class Session:
    path: Path
    context: Any  # volatility3 Context
    kernel: str  # name of the kernel module in context.modules
    config_path: str


def _private_dirs(wanted: Sequence[str]) -> tuple[str, str]:
    """(identifier cache dir, scratch symbol dir) private to this set of symbol directories.

    Volatility keeps one identifier cache per user and drops every entry not under the symbol
    path of the run that updates it, so a concurrent `vol` with other -s directories makes our
    table vanish from the cache; on such a miss Volatility tries to download the PDB and, to do
    so, truncates and then deletes <first symbol dir>/windows/<pdb>/<GUID>-<age>.json.xz — the
    very file the user gave. A private cache avoids the race and a scratch directory placed
    first on the path takes any such write instead of the user's files.
    """
    key = hashlib.sha256("\0".join(wanted).encode()).hexdigest()[:16]
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    root = cache_home / "hpforensics" / "volatility"
    cache, scratch = root / key, root / key / "scratch-symbols"
    scratch.mkdir(parents=True, exist_ok=True)
    return str(cache), str(scratch)


def _prepare_framework(symbol_dirs: Sequence[Path]) -> None:
    # lazy: volatility3 (~0.5 s to import) only for memory images
    import volatility3.plugins
    import volatility3.symbols
    from volatility3 import framework
    from volatility3.framework import constants

    framework.require_interface_version(2, 0, 0)
    constants.OFFLINE = True
    wanted = [str(Path(d).resolve()) for d in symbol_dirs]
    constants.CACHE_PATH, scratch = _private_dirs(wanted)
    volatility3.symbols.__path__ = [scratch] + wanted + [
        p for p in constants.SYMBOL_BASEPATHS if p not in wanted]
    plugin_paths = [str(PLUGINS_DIR)] if PLUGINS_DIR.is_dir() else []
    volatility3.plugins.__path__ = plugin_paths + [
        p for p in constants.PLUGINS_PATH if p not in plugin_paths]
    framework.import_files(volatility3.plugins, True)


def diagnose_image(path: Path) -> str:
    """Why Volatility found no Windows x64 address space, in one sentence."""
    size = path.stat().st_size
    if size < _DTB_BAND[0]:
        return f"file is only {size:#x} bytes: truncated image, no page tables in it"
    with open(path, "rb") as fh:
        fh.seek(_DTB_BAND[0])
        band = fh.read(_DTB_BAND[1] - _DTB_BAND[0])
    for off in range(0, len(band) - 0xFFF, 0x1000):
        page_addr = _DTB_BAND[0] + off
        entries = struct.unpack_from("<512Q", band, off)
        selfref = [i for i, e in enumerate(entries) if e & 1 and (e & 0xFFFFFFFFFF000) == page_addr]
        if len(selfref) != 1 or not 0x100 <= selfref[0] < 0x1FF:
            continue
        highest = max((e & 0xFFFFFFFFFF000) for e in entries if e & 1)
        if highest >= size:
            return (f"truncated image: the kernel page tables at {page_addr:#x} reference "
                    f"physical memory up to {highest + 0xFFF:#x} but the file ends at {size:#x}")
        with open(path, "rb") as fh:
            lost = _untranslatable(fh, page_addr, KUSER_KERNEL)
        if lost:
            return (f"kernel page tables found at {page_addr:#x}, but KUSER_SHARED_DATA "
                    f"({KUSER_KERNEL:#x}) does not translate ({lost}): the image has lost pages "
                    "(zeroed or missing in acquisition)")
    return ("no Windows x64 kernel page tables found (not a raw physical memory image of "
            "Windows 10/11 x64, or truncated)")


KUSER_KERNEL = 0xFFFFF78000000000


def _untranslatable(fh, dtb: int, va: int) -> str:
    """Why `va` does not translate through the tables at `dtb` ('' when it does)."""
    table = dtb
    for level, shift in (("PML4", 39), ("PDPT", 30), ("PD", 21), ("PT", 12)):
        fh.seek(table + ((va >> shift) & 0x1FF) * 8)
        raw = fh.read(8)
        entry = struct.unpack("<Q", raw)[0] if len(raw) == 8 else 0
        if not entry & 1:
            return f"{level} entry at {table:#x} is not present"
        if level in ("PDPT", "PD") and entry & 0x80:
            return ""
        table = entry & 0xFFFFFFFFFF000
    fh.seek(table)
    return "" if any(fh.read(0x1000)) else f"its page at {table:#x} is all zeros"


def table_frames_beyond_end(path: Path, dtb: int, halves: tuple[bool, bool] = (True, True)
                            ) -> int | None:
    """Highest page-table frame (PDPT/PD/PT, never a leaf page) past the end of a raw file.

    Page tables always live in RAM, so in a raw image any table frame beyond the file's end
    means the file was cut short. Leaf entries are not checked: device memory can lie there.
    `halves` selects the user (low) and kernel (high) PML4 halves. None when all are inside.
    """
    size = path.stat().st_size
    worst = None
    with open(path, "rb") as fh:
        def table(addr: int) -> tuple[int, ...] | None:
            if addr + 0x1000 > size:
                return None
            fh.seek(addr)
            return struct.unpack("<512Q", fh.read(0x1000))

        seen: set[tuple[int, int]] = set()

        def walk(addr: int, level: int, indices: range) -> None:
            nonlocal worst
            # each table once: entries sharing a table (or pointing back up) would otherwise
            # make a crafted image cost 512^3 table reads
            if (addr, level) in seen:
                return
            seen.add((addr, level))
            entries = table(addr)
            if entries is None:
                worst = max(worst or 0, addr)
                return
            if level == 1:
                return
            for i in indices:
                e = entries[i]
                if not e & 1 or (level < 4 and e & 0x80):  # not present, or a large page
                    continue
                nxt = e & 0xFFFFFFFFFF000
                if level == 4 and nxt == addr:  # the self-reference
                    continue
                walk(nxt, level - 1, range(512))

        user, kernel = halves
        walk(dtb, 4, range(0 if user else 256, 512 if kernel else 256))
    return worst


def _missing_symbols_message(context, symbol_dirs: Sequence[Path]) -> str | None:
    """Name the kernel PDB the image wants, when a translation layer was found."""
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import layers
    from volatility3.framework.symbols.windows import pdbutil

    for name, layer in list(context.layers.items()):
        if not isinstance(layer, layers.intel.Intel):
            continue
        for hit in pdbutil.PDBUtility.pdbname_scan(
            context, name, layer.page_size, [b"ntkrnlmp.pdb", b"ntoskrnl.pdb", b"ntkrnlpa.pdb",
                                             b"ntkrpamp.pdb"], start=0xF80000000000,
        ):
            want = f"windows/{hit['pdb_name']}/{hit['GUID']}-{hit['age']}.json.xz"
            where = ", ".join(str(d) for d in symbol_dirs) or "(no --symbols given)"
            return (f"no symbol table for kernel {hit['pdb_name']} GUID {hit['GUID']} age "
                    f"{hit['age']}: put {want} under a --symbols DIR (searched: {where})")
        return "Windows page tables found but no kernel image with a CodeView record (truncated?)"
    return None


def _location(image: Path) -> str:
    """The file:// URL Volatility opens. Volatility unquotes a URL into text as UTF-8, so a
    name that is not UTF-8 would name another file (or none): such an image is reached
    through an ASCII-named symlink to it in a scratch folder that lives as long as the
    process (the image itself is opened read-only, as any other)."""
    resolved = image.resolve()
    try:
        os.fsencode(resolved).decode("utf-8")
        return resolved.as_uri()
    except UnicodeDecodeError:
        global _LINKS
        if _LINKS is None:
            _LINKS = tempfile.TemporaryDirectory(prefix="hpf-image-")
        link = Path(_LINKS.name) / f"image-{len(os.listdir(_LINKS.name))}"
        link.symlink_to(resolved)
        return link.as_uri()


_LINKS: tempfile.TemporaryDirectory | None = None


def open_image(
    path: str | os.PathLike[str],
    symbols: Sequence[str | os.PathLike[str]] = (),
    progress: Callable[[float, str], None] | None = None,
) -> Session:
    """Run Volatility's automagic on `path` and return the context with the kernel module."""
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import automagic, contexts, interfaces
    from volatility3.plugins.windows import pslist

    image = Path(path)
    if not image.exists():
        raise InputError(image, "no such memory image")
    check_regular(image)  # a FIFO or device: refused before Volatility opens it (would block)
    symbol_dirs = [Path(s) for s in symbols]
    for d in symbol_dirs:
        if not d.is_dir():
            raise InputError(d, "symbol directory does not exist")
    _prepare_framework(symbol_dirs)
    ctx = contexts.Context()
    ctx.config["automagic.LayerStacker.single_location"] = _location(image)
    # Automagic is run for PsList's requirements (a kernel module with symbols): every plugin
    # and analysis here needs exactly that, and PsList is Volatility's own, stable anchor.
    config_path = "plugins.PsList"
    chosen = automagic.choose_automagic(automagic.available(ctx), pslist.PsList)
    errors = automagic.run(chosen, ctx, pslist.PsList, "plugins", progress_callback=progress)
    if pslist.PsList.unsatisfied(ctx, config_path):
        log.debug("automagic errors: %s", errors)
        message = _missing_symbols_message(ctx, symbol_dirs) or diagnose_image(image)
        raise InputError(image, message)
    kernel = ctx.config.get(interfaces.configuration.path_join(config_path, "kernel"))
    if not kernel or kernel not in ctx.modules:
        raise InputError(image, diagnose_image(image))
    session = Session(image, ctx, kernel, config_path)
    check_truncation(session, ctx.layers[ctx.modules[kernel].layer_name]._initial_entry & ~0xFFF)
    return session


def check_truncation(session: Session, dtb: int, user: bool = False) -> None:
    """Raise InputError when the page tables rooted at `dtb` run past the end of a raw file."""
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework.layers.physical import FileLayer

    layer = session.context.layers[session.context.modules[session.kernel].layer_name]
    base = session.context.layers[layer.config["memory_layer"]]
    if not isinstance(base, FileLayer):  # crash dumps etc.: physical offsets are not file offsets
        return
    beyond = table_frames_beyond_end(session.path, dtb, (user, not user))
    if beyond is not None:
        raise InputError(session.path, (
            f"truncated image: page tables reference physical memory at {beyond:#x} but the "
            f"file ends at {session.path.stat().st_size:#x}; acquire or copy the whole image"))
