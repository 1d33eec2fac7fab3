"""Kernel and user objects written from the builder's records through the ISF declarations:
EPROCESS (+ session space, handle table), PEB / process parameters / PEB_LDR_DATA / loader
entries, KLDR entries, and the VAD AVL tree with its Subsection → ControlArea → FILE_OBJECT
chain for image nodes.
"""
from __future__ import annotations

import struct

from memimage import isf
from memimage.paging import PAGE, canonical
from memimage.records import PROT_READWRITE, VAD_IMAGE, LdrEntry, Process, Vad, filetime
from memimage.winobj import link_list, put_fields, size_of, unicode_fields


class ObjectWriter:
    """Mixed into WindowsImageBuilder: needs `kernel`, `pool`, `build`."""

    def _write_eprocess(self, p: Process) -> int:
        size = size_of("_EPROCESS")
        ep = self.pool.alloc(size, tag=b"Proc")
        p.eprocess = ep
        session = self.pool.alloc(0x40, tag=b"MmSt")
        self.kernel.write(session + 8, struct.pack("<I", 0 if p.pid < 500 else 1))
        handles = self.pool.alloc(size_of("_HANDLE_TABLE"), tag=b"Obtb")
        tlh = ep + isf.resolve("_EPROCESS", "ThreadListHead")[0]
        fields: dict[str, int | bytes] = {
            "Pcb.Header.Type": 3, "Pcb.Header.Size": size // 8 & 0xFF,
            "Pcb.DirectoryTableBase": p.space.dtb,
            "UniqueProcessId": p.pid, "InheritedFromUniqueProcessId": p.ppid,
            "CreateTime.QuadPart": filetime(p.create_time) if p.pid != 4 else 0,
            "ImageFileName": p.name.encode()[:14].ljust(15, b"\0"),
            "ThreadListHead.Flink": tlh, "ThreadListHead.Blink": tlh, "ActiveThreads": 1,
            "Session": session if p.pid != 4 else 0, "ObjectTable": handles,
            "Peb": p.peb, "PriorityClass": 2,
        }
        if p.pid != 4:
            self._write_peb(p)
        root, count = self._write_vads(p)
        fields["VadRoot.Root"] = root
        fields["VadCount"] = count
        put_fields(self.kernel, "_EPROCESS", ep, fields)
        return ep

    def _write_peb(self, p: Process) -> None:
        assert p.heap is not None
        ldr = p.heap.alloc(size_of("_PEB_LDR_DATA"))
        params = p.heap.alloc(size_of("_RTL_USER_PROCESS_PARAMETERS"))
        exe = p.modules[0].full_name if p.modules else f"C:\\Windows\\System32\\{p.name}"
        pf: dict[str, int | bytes] = {"Length": size_of("_RTL_USER_PROCESS_PARAMETERS"),
                                      "MaximumLength": size_of("_RTL_USER_PROCESS_PARAMETERS")}
        pf.update(unicode_fields("ImagePathName", p.heap, exe))
        pf.update(unicode_fields("CommandLine", p.heap, f'"{exe}"'))
        put_fields(p.space, "_RTL_USER_PROCESS_PARAMETERS", params, pf)
        put_fields(p.space, "_PEB", p.peb, {
            "ImageBaseAddress": p.modules[0].base if p.modules else 0, "Ldr": ldr,
            "ProcessParameters": params, "ProcessImagesHotPatched": int(p.hotpatched),
            "OSMajorVersion": 10, "OSMinorVersion": 0, "OSBuildNumber": self.build,
            "SessionId": 0 if p.pid < 500 else 1})
        entries = [self._write_ldr(p, m) for m in p.modules]
        put_fields(p.space, "_PEB_LDR_DATA", ldr, {"Length": size_of("_PEB_LDR_DATA"),
                                                   "Initialized": 1})
        link_list(p.space, ldr + 0x10, [e for e in entries])
        link_list(p.space, ldr + 0x20, [e + 0x10 for e in entries])
        link_list(p.space, ldr + 0x30, [e + 0x20 for e in entries[1:]])
        # the heap VAD covers whatever the process heap grew to
        end = (p.heap._next + PAGE - 1) & ~(PAGE - 1)
        p.vads.append(Vad(p.heap.base, end, PROT_READWRITE, True,
                          commit=(end - p.heap.base) // PAGE))

    def _write_ldr(self, p: Process, m: LdrEntry) -> int:
        assert p.heap is not None
        e = p.heap.alloc(size_of("_LDR_DATA_TABLE_ENTRY"))
        base_name = m.full_name.rsplit("\\", 1)[-1]
        f: dict[str, int | bytes] = {
            "DllBase": m.base, "EntryPoint": m.entry_point, "SizeOfImage": m.size,
            "Flags": 0x000CC2CC if m is not p.modules[0] else 0x0004A2CC,
            "ObsoleteLoadCount": 0xFFFF, "TimeDateStamp": m.timestamp, "OriginalBase": m.base,
            "LoadTime.QuadPart": filetime(m.load_time or p.create_time),
            "LoadReason": m.load_reason, "ReferenceCount": 1, "SigningLevel": 12,
            "CheckSum": m.checksum, "ActivePatchImageBase": m.active_patch_base,
            "HotPatchState": m.hotpatch_state,
        }
        f.update(unicode_fields("FullDllName", p.heap, m.full_name))
        f.update(unicode_fields("BaseDllName", p.heap, base_name))
        put_fields(p.space, "_LDR_DATA_TABLE_ENTRY", e, f)
        return e

    def _write_kldr(self, d: LdrEntry) -> int:
        e = self.pool.alloc(size_of("_KLDR_DATA_TABLE_ENTRY"), tag=b"MmLd")
        f: dict[str, int | bytes] = {
            "DllBase": d.base, "EntryPoint": d.entry_point, "SizeOfImage": d.size,
            "Flags": 0x49104000, "LoadCount": 1, "CheckSum": d.checksum,
            "TimeDateStamp": d.timestamp, "SizeOfImageNotRounded": d.size}
        f.update(unicode_fields("FullDllName", self.pool, d.full_name))
        f.update(unicode_fields("BaseDllName", self.pool, d.full_name.rsplit("\\", 1)[-1]))
        put_fields(self.kernel, "_KLDR_DATA_TABLE_ENTRY", e, f)
        return e

    def _write_vads(self, p: Process) -> tuple[int, int]:
        vads = sorted(p.vads, key=lambda v: v.start)
        nodes = [self._write_vad(p, v) for v in vads]

        def build(lo: int, hi: int, parent: int) -> int:
            if lo >= hi:
                return 0
            mid = (lo + hi) // 2
            node = nodes[mid]
            left = build(lo, mid, node)
            right = build(mid + 1, hi, node)
            put_fields(self.kernel, "_RTL_BALANCED_NODE", node,
                       {"Left": left, "Right": right,
                        "ParentValue": canonical(parent) if parent else 0})
            return node

        return build(0, len(nodes), 0), len(nodes)

    def _write_vad(self, p: Process, v: Vad) -> int:
        image = v.vad_type == VAD_IMAGE
        type_name = "_MMVAD" if image else "_MMVAD_SHORT"
        node = self.pool.alloc(size_of(type_name), tag=b"Vad " if image else b"VadS")
        pre = "Core." if image else ""
        start_vpn, end_vpn = v.start >> 12, (v.end >> 12) - 1
        f: dict[str, int | bytes] = {
            pre + "StartingVpn": start_vpn & 0xFFFFFFFF, pre + "EndingVpn": end_vpn & 0xFFFFFFFF,
            pre + "StartingVpnHigh": start_vpn >> 32, pre + "EndingVpnHigh": end_vpn >> 32,
            pre + "u.VadFlags.VadType": v.vad_type, pre + "u.VadFlags.Protection": v.protection,
            pre + "u.VadFlags.PrivateMemory": int(v.private),
            pre + "u1.VadFlags1.CommitCharge": v.commit, pre + "ReferenceCount": 1}
        if image:
            fobj = self.pool.alloc(size_of("_FILE_OBJECT"), tag=b"File")
            ff: dict[str, int | bytes] = {"Type": 5, "Size": size_of("_FILE_OBJECT"),
                                          "ReadAccess": 1, "SharedRead": 1, "SharedDelete": 1}
            ff.update(unicode_fields("FileName", self.pool, v.file_name))
            put_fields(self.kernel, "_FILE_OBJECT", fobj, ff)
            ca = self.pool.alloc(size_of("_CONTROL_AREA"), tag=b"MmCa")
            seg = self.pool.alloc(size_of("_SEGMENT"), tag=b"MmSt")
            ptes = (v.end - v.start) // PAGE
            put_fields(self.kernel, "_SEGMENT", seg, {"ControlArea": ca, "TotalNumberOfPtes": ptes,
                                                      "SizeOfSegment": ptes * PAGE})
            put_fields(self.kernel, "_CONTROL_AREA", ca, {
                "Segment": seg, "NumberOfSectionReferences": 1, "NumberOfMappedViews": 1,
                "NumberOfUserReferences": 1, "LongFlags": 0x20 | 0x80,  # Image | File
                "FilePointer.Value": canonical(fobj) | 0x7})
            sub = self.pool.alloc(size_of("_SUBSECTION"), tag=b"MmSb")
            put_fields(self.kernel, "_SUBSECTION", sub, {"ControlArea": ca,
                                                         "PtesInSubsection": ptes})
            f.update({"Subsection": sub, "VadsProcess": p.eprocess | 1, "FileObject": fobj})
        put_fields(self.kernel, type_name, node, f)
        return node
