"""Processes and the images mapped in them, from the kernel's and the loader's own records.

Per process: the PEB loader list (InLoadOrder) gives each module's loader record, including
the hotpatch fields (CheckSum, ActivePatchImageBase, HotPatchState, LoadReason); the VAD tree
gives every image-backed mapping, so an image unlinked from the loader lists still appears
(`in_loader_list=False`). Kernel space: PsLoadedModuleList. Unreadable records are skipped
with a warning, never raised.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Iterator

from hpforensics.space import MappedImage
from hpforensics.memimage.fastwalk import FastWalker
from hpforensics.sources.volatility import header_size_of_image

if TYPE_CHECKING:
    from hpforensics.memimage.fastwalk import FastWalker

log = logging.getLogger(__name__)

LOAD_REASON_PATCH_IMAGE = 9
VAD_TYPE_IMAGE = 2
PROCESS_IMAGES_HOTPATCHED = 1 << 7  # PEB.CrossProcessFlags


@dataclass
class ProcessRecord:
    pid: int | None  # None for kernel space
    name: str
    layer_name: str
    offset: int = 0  # EPROCESS virtual address (kernel layer)
    dtb: int = 0  # physical address of the PML4
    images_hotpatched: bool | None = None  # PEB.CrossProcessFlags bit 7; None if unreadable
    images: list[MappedImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    damaged: bool = False  # the record itself could not be read as it was


def _str(obj) -> str:
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import exceptions

    try:
        return str(obj.get_string())
    except (exceptions.InvalidAddressException, ValueError):
        return ""


def _opt(fn: Callable[[], int]) -> int | None:
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import exceptions

    try:
        return int(fn())
    except (exceptions.InvalidAddressException, AttributeError, ValueError):
        return None


def _file_name(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1]


def loader_images(proc) -> Iterator[MappedImage]:
    """Every loader-listed module of an _EPROCESS, with its hotpatch fields."""
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import exceptions

    try:
        entries = list(proc.load_order_modules())
    except exceptions.InvalidAddressException:
        return
    for entry in entries:
        try:
            base = int(entry.DllBase)
            size = int(entry.SizeOfImage)
        except exceptions.InvalidAddressException:
            continue
        if not base or not size:
            continue
        path = _str(entry.FullDllName) or _str(entry.BaseDllName)
        has = entry.has_member
        reason = _opt(lambda: entry.LoadReason) if has("LoadReason") else None
        yield MappedImage(
            base=base,
            size=size,
            path=path,
            name=_file_name(path) or f"{base:#x}",
            in_loader_list=True,
            hotpatch_state=_opt(lambda: entry.HotPatchState) if has("HotPatchState") else None,
            active_patch_base=(_opt(lambda: entry.ActivePatchImageBase) or None)
            if has("ActivePatchImageBase") else None,
            is_patch_image=reason == LOAD_REASON_PATCH_IMAGE,
            timestamp=_opt(lambda: entry.TimeDateStamp) if has("TimeDateStamp") else None,
            checksum=_opt(lambda: entry.CheckSum) if has("CheckSum") else None,
        )


def vad_images(proc) -> Iterator[tuple[int, int, str]]:
    """(start, size, file name) of every image-backed VAD node."""
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import exceptions

    try:
        vads = list(proc.get_vad_root().traverse())
    except (exceptions.InvalidAddressException, RuntimeError, AttributeError):
        return
    for vad in vads:
        try:
            if not vad.has_member("Subsection") and not (
                vad.has_member("Core") and vad.has_member("u2")
            ):
                continue
            flags = vad.Core.u.VadFlags if vad.has_member("Core") else vad.u.VadFlags
            if int(flags.VadType) != VAD_TYPE_IMAGE:
                continue
            name = vad.get_file_name()
            start, size = int(vad.get_start()), int(vad.get_size())
        except exceptions.InvalidAddressException:
            continue
        yield start, size, name if isinstance(name, str) else ""


def process_images(proc, fast: "FastWalker | None" = None) -> list[MappedImage]:
    """Loader list first, then image VADs the loader does not list."""
    loaded = fast.loader_images(proc) if fast else None
    if loaded is None:
        loaded = list(loader_images(proc))
    listed = {i.base: i for i in loaded}
    vads = fast.vad_images(proc) if fast else None
    if vads is None:
        vads = list(vad_images(proc))
    for start, size, _ in vads:
        # The image VAD is the whole mapping: on 24H2 it runs past SizeOfImage (extension).
        if start in listed:
            listed[start] = replace(listed[start], mapped_size=size)
    images = list(listed.values())
    for start, size, name in vads:
        if start in listed:
            continue
        images.append(MappedImage(start, size, name, _file_name(name) or f"{start:#x}",
                                  in_loader_list=False, mapped_size=size))
    return sorted(images, key=lambda i: i.base)


def images_hotpatched(proc) -> bool | None:
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import exceptions

    try:
        peb = proc.get_peb()
        return bool(int(peb.CrossProcessFlags) & PROCESS_IMAGES_HOTPATCHED)
    except (exceptions.InvalidAddressException, AttributeError):
        return None


def processes(context, kernel_name: str, pids: list[int] | None = None) -> Iterator[ProcessRecord]:
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import exceptions
    from volatility3.framework.objects import utility
    from volatility3.plugins.windows import pslist

    filter_func = pslist.PsList.create_pid_filter(pids or None)

    fast = FastWalker.create(context, kernel_name)
    for proc in pslist.PsList.list_processes(context, kernel_name, filter_func=filter_func):
        try:
            pid = int(proc.UniqueProcessId)
            name = utility.array_to_string(proc.ImageFileName)
            layer = proc.add_process_layer()
        except exceptions.InvalidAddressException as exc:
            log.warning("skipping unreadable process at %#x: %s", proc.vol.offset, exc)
            continue
        rec = ProcessRecord(pid, name, layer, int(proc.vol.offset),
                            int(proc.Pcb.DirectoryTableBase) & 0xFFFFFFFFFF000)
        if pid == 4:  # System: kernel images are analysed in kernel space
            continue
        if pid == 0 and not name:
            # The idle process is never on the active-process list: a PID 0 without a name
            # there is an EPROCESS page that reads as zeros (not acquired, or wiped).
            rec.damaged = True
            rec.warnings.append(
                f"process list entry at {rec.offset:#x}: the EPROCESS reads as zeros (PID 0, no "
                "name): its page was not acquired or was zeroed; the process it held is lost")
            yield rec
            continue
        rec.images_hotpatched = images_hotpatched(proc)
        rec.images = [_image_size_from_header(context, layer, m)
                      for m in process_images(proc, fast)]
        yield rec


def _image_size_from_header(context, layer: str, image: MappedImage) -> MappedImage:
    """An image only the VAD tree lists has the VAD's size; its SizeOfImage comes from the
    mapped header, so the extension pages past it are told apart from the image."""
    if image.in_loader_list:
        return image

    size = header_size_of_image(context.layers[layer], image.base)
    if size is None or not 0 < size < image.size:
        return image
    return replace(image, size=size, mapped_size=image.size)


def kernel_modules(context, kernel_name: str) -> ProcessRecord:
    # lazy: volatility3 (~0.5 s to import) only for memory images
    from volatility3.framework import exceptions
    from volatility3.plugins.windows import modules as vmodules

    kernel = context.modules[kernel_name]
    rec = ProcessRecord(None, "kernel", kernel.layer_name)
    for mod in vmodules.Modules.list_modules(context, kernel_name):
        try:
            base, size = int(mod.DllBase), int(mod.SizeOfImage)
        except exceptions.InvalidAddressException:
            continue
        path = _str(mod.FullDllName) or _str(mod.BaseDllName)
        rec.images.append(MappedImage(
            base, size, path, _file_name(path) or f"{base:#x}",
            timestamp=_opt(lambda: mod.TimeDateStamp) if mod.has_member("TimeDateStamp") else None,
            checksum=_opt(lambda: mod.CheckSum) if mod.has_member("CheckSum") else None))
    rec.images.sort(key=lambda i: i.base)
    return rec
