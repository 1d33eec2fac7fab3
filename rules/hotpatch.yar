/*
 * Windows hotpatch artefacts. See rules/README.md for what a hit means and how sure it is.
 * Structure offsets: winnt.h IMAGE_LOAD_CONFIG_DIRECTORY64 (HotPatchTableOffset at 0xF0),
 * IMAGE_HOT_PATCH_INFO; redirect and HPAT shapes: ../docs/hotpatch-format.md.
 */
import "pe"

rule hotpatch_image_load_config : hotpatch_image
{
    meta:
        description = "PE whose load configuration carries IMAGE_HOT_PATCH_INFO (a hotpatch image)"
        confidence = "high"
        scope = "file"
    condition:
        pe.is_pe and pe.is_64bit()
        and pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG].virtual_address != 0
        and uint32(pe.rva_to_offset(pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG].virtual_address)) >= 0xF4
        and uint32(pe.rva_to_offset(pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG].virtual_address) + 0xF0) != 0
        // IMAGE_HOT_PATCH_INFO: Version 1..3, Size covers at least the version-1 fields,
        // BaseImageCount at +0x10 is small and non-zero.
        and uint32(pe.rva_to_offset(uint32(pe.rva_to_offset(pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG].virtual_address) + 0xF0))) >= 1
        and uint32(pe.rva_to_offset(uint32(pe.rva_to_offset(pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG].virtual_address) + 0xF0))) <= 3
        and uint32(pe.rva_to_offset(uint32(pe.rva_to_offset(pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG].virtual_address) + 0xF0)) + 0x10) >= 1
        and uint32(pe.rva_to_offset(uint32(pe.rva_to_offset(pe.data_directories[pe.IMAGE_DIRECTORY_ENTRY_LOAD_CONFIG].virtual_address) + 0xF0)) + 0x10) <= 64
}

rule hotpatch_hpat_stubs : hotpatch_image hpat
{
    meta:
        description = "Hotpatch Address Table: run of 8-byte stubs jmp qword ptr [rip+0xFFA] padded with int3 (committed in memory after the base image)"
        confidence = "high"
        scope = "memory"
    strings:
        // four consecutive stubs; a real HPAT page holds up to 512
        $hpat = { FF 25 FA 0F 00 00 CC CC FF 25 FA 0F 00 00 CC CC FF 25 FA 0F 00 00 CC CC FF 25 FA 0F 00 00 CC CC }
        $one = { FF 25 FA 0F 00 00 CC CC }
    condition:
        $hpat or (#one >= 1 and for any i in (1..#one): (@one[i] % 8 == 0))
}

rule hotpatch_redirect_e9_ebf9 : hotpatch_redirect
{
    meta:
        description = "Function entry redirected the way the current hotpatch engine writes it: E9 rel32 in the padding, EB F9 at the entry"
        confidence = "medium: the shape alone; the engine's verdict checks the chain to a matching patch image"
        scope = "memory"
    strings:
        $r = { E9 ?? ?? ?? ?? EB F9 }
    condition:
        $r
}

rule hotpatch_redirect_ff25_ebf8 : hotpatch_redirect
{
    meta:
        description = "Function entry redirected the older way: FF 25 rel32 (jmp [rip+disp32]) in the padding, EB F8 at the entry"
        confidence = "medium: the shape alone"
        scope = "memory"
    strings:
        $r = { FF 25 ?? ?? ?? ?? EB F8 }
    condition:
        $r
}
