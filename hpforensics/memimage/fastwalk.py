"""VAD trees and loader lists read as raw structures (layouts from the ISF, see rawstruct).

Same results as the object-model walk in `walk` (which stays the fallback: WoW64 processes,
symbol tables without these members), a few times faster on large images.
"""
from __future__ import annotations

import logging

from hpforensics.memimage.rawstruct import Layout, read, try_layout, unicode
from hpforensics.space import MappedImage

log = logging.getLogger(__name__)

VAD_TYPE_IMAGE = 2
LOAD_REASON_PATCH_IMAGE = 9
MAX_NODES = 1 << 16
MAX_ENTRIES = 1 << 12


class FastWalker:
    def __init__(self, context, kernel_name: str, vad: Layout, mmvad: Layout, sub: Layout,
                 ca: Layout, fobj: Layout, peb: Layout, ldr_data: Layout, ldr: Layout) -> None:
        self.context = context
        self.kernel = context.modules[kernel_name]
        self.klayer = context.layers[self.kernel.layer_name]
        self.vad, self.mmvad, self.sub, self.ca, self.fobj = vad, mmvad, sub, ca, fobj
        self.peb, self.ldr_data, self.ldr = peb, ldr_data, ldr
        # the hotpatch members of _LDR_DATA_TABLE_ENTRY (24H2 kernels), set by create()
        self.hotpatch: Layout | None = None

    @classmethod
    def create(cls, context, kernel_name: str) -> "FastWalker | None":
        k = context.modules[kernel_name]
        parts = (
            try_layout(k, "_MMVAD_SHORT", ["VadNode.Left", "VadNode.Right", "StartingVpn",
                                           "EndingVpn", "StartingVpnHigh", "EndingVpnHigh",
                                           "u.VadFlags.VadType"]),
            try_layout(k, "_MMVAD", ["Subsection"]),
            try_layout(k, "_SUBSECTION", ["ControlArea"]),
            try_layout(k, "_CONTROL_AREA", ["FilePointer.Value"]),
            try_layout(k, "_FILE_OBJECT", ["FileName.Length", "FileName.Buffer"]),
            try_layout(k, "_PEB", ["Ldr"]),
            try_layout(k, "_PEB_LDR_DATA", ["InLoadOrderModuleList"]),
            try_layout(k, "_LDR_DATA_TABLE_ENTRY", [
                "InLoadOrderLinks.Flink", "DllBase", "SizeOfImage", "FullDllName.Length",
                "FullDllName.Buffer", "BaseDllName.Length", "BaseDllName.Buffer",
                "TimeDateStamp"]),
        )
        if any(p is None for p in parts):
            log.debug("symbol table lacks members for the raw walk; using the object model")
            return None
        walker = cls(context, kernel_name, *parts)  # type: ignore[arg-type]
        walker.hotpatch = try_layout(k, "_LDR_DATA_TABLE_ENTRY", [
            "CheckSum", "ActivePatchImageBase", "HotPatchState", "LoadReason"])
        return walker

    # -- VADs -----------------------------------------------------------------------------
    def vad_images(self, proc) -> list[tuple[int, int, str]] | None:
        try:
            root = int(proc.VadRoot.Root)
        except Exception:  # noqa: BLE001 - any oddity: let the object walk decide
            return None
        v, size = self.vad, max(self.vad.size, self.mmvad.size)
        seen: set[int] = set()
        out, todo = [], [root]
        while todo and len(seen) < MAX_NODES:
            node = todo.pop()
            if not node or node in seen:
                continue
            seen.add(node)
            data = read(self.klayer, node, size) or read(self.klayer, node, v.size)
            if data is None:
                continue
            todo.append(v["VadNode.Right"].get(data))
            todo.append(v["VadNode.Left"].get(data))
            if v["u.VadFlags.VadType"].get(data) != VAD_TYPE_IMAGE or len(data) < size:
                continue
            start = (v["StartingVpn"].get(data) | v["StartingVpnHigh"].get(data) << 32) << 12
            end = ((v["EndingVpn"].get(data) | v["EndingVpnHigh"].get(data) << 32) + 1) << 12
            out.append((start, end - start, self._file_name(self.mmvad["Subsection"].get(data))))
        if todo and len(seen) >= MAX_NODES:
            # a real tree this large is implausible: say the walk was cut, do not loop on
            log.warning("pid %s: VAD tree walk stopped at its limit of %d nodes (corrupt or "
                        "cyclic tree?); image regions beyond it are not listed",
                        _pid(proc), MAX_NODES)
        return sorted(out)

    def _file_name(self, subsection: int) -> str:
        data = read(self.klayer, subsection, self.sub.size) if subsection else None
        ca = self.sub["ControlArea"].get(data) if data else 0
        data = read(self.klayer, ca, self.ca.size) if ca else None
        fobj = (self.ca["FilePointer.Value"].get(data) & ~0xF) if data else 0
        data = read(self.klayer, fobj, self.fobj.size) if fobj else None
        return unicode(self.klayer, data, 0, self.fobj, "FileName") if data else ""

    # -- loader list ----------------------------------------------------------------------
    def loader_images(self, proc) -> list[MappedImage] | None:
        try:
            if proc.get_is_wow64():
                return None  # 32-bit loader lists: the object model handles both PEBs
            peb_addr = int(proc.Peb)
            layer = self.context.layers[proc.add_process_layer()]
        except Exception:  # noqa: BLE001
            return None
        peb = read(layer, peb_addr, self.peb.size) if peb_addr else None
        if peb is None:
            return []
        ldr = self.peb["Ldr"].get(peb)
        head = ldr + self.ldr_data["InLoadOrderModuleList"].offset
        link_off = self.ldr["InLoadOrderLinks.Flink"].offset
        first = read(layer, head, 8)
        if first is None:
            return []
        out: list[MappedImage] = []
        entry_link = int.from_bytes(first, "little")
        seen: set[int] = set()
        while (entry_link and entry_link != head and entry_link not in seen
               and len(out) < MAX_ENTRIES):
            seen.add(entry_link)
            base = entry_link - link_off
            data = read(layer, base, self.ldr.size)
            if data is None:
                break
            entry_link = self.ldr["InLoadOrderLinks.Flink"].get(data)
            dll, size = self.ldr["DllBase"].get(data), self.ldr["SizeOfImage"].get(data)
            if not dll or not size:
                continue
            path = (unicode(layer, data, 0, self.ldr, "FullDllName")
                    or unicode(layer, data, 0, self.ldr, "BaseDllName"))
            hp = self.hotpatch
            state = hp["HotPatchState"].get(data) if hp else None
            active = hp["ActivePatchImageBase"].get(data) if hp else None
            reason = hp["LoadReason"].get(data) if hp else None
            out.append(MappedImage(
                base=dll, size=size, path=path,
                name=path.replace("/", "\\").rsplit("\\", 1)[-1] or f"{dll:#x}",
                in_loader_list=True, hotpatch_state=state, active_patch_base=active or None,
                is_patch_image=reason == LOAD_REASON_PATCH_IMAGE,
                timestamp=self.ldr["TimeDateStamp"].get(data),
                checksum=hp["CheckSum"].get(data) if hp else None))
        if len(out) >= MAX_ENTRIES:
            log.warning("pid %s: loader list walk stopped at its limit of %d entries",
                        _pid(proc), MAX_ENTRIES)
        elif entry_link in seen:
            log.warning("pid %s: loader list loops back to an entry seen before (at %#x); "
                        "the walk stopped there", _pid(proc), entry_link)
        return out


def _pid(proc) -> str:
    try:
        return str(int(proc.UniqueProcessId))
    except Exception:  # noqa: BLE001 - a smeared EPROCESS still deserves its warning
        return "?"
