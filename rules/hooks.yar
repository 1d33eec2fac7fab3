/*
 * Shapes an attacker writes into code. Meant for the regions that differ from their reference
 * (the default restriction of --yara); over whole clean images some shapes occur by chance,
 * which rules/README.md states per rule.
 */

rule hook_mov_rax_jmp_rax : hook inline
{
    meta:
        description = "mov rax, imm64; jmp rax — absolute inline trampoline"
        confidence = "high in a changed region"
    strings:
        $a = { 48 B8 ?? ?? ?? ?? ?? ?? ?? ?? FF E0 }
        $b = { 49 BB ?? ?? ?? ?? ?? ?? ?? ?? 41 FF E3 }
        $c = { 48 B8 ?? ?? ?? ?? ?? ?? ?? ?? 50 C3 }
    condition:
        any of them
}

rule hook_jmp_rip_absolute : hook inline
{
    meta:
        description = "jmp qword ptr [rip+0] followed by an absolute 64-bit target (14-byte trampoline)"
        confidence = "high in a changed region"
    strings:
        // the target must look like a canonical x64 address: user (0x00007Fxx_xxxxxxxx and
        // below 0x0000_7FFF_FFFF_FFFF) or kernel (0xFFFFF8xx_xxxxxxxx and up); zero-displacement
        // jumps followed by other data are ordinary in PLT-like tables
        $user = { FF 25 00 00 00 00 ?? ?? ?? ?? ?? 7F 00 00 }
        $kernel = { FF 25 00 00 00 00 ?? ?? ?? ?? ?? (F8 | F9 | FA | FB | FC | FD | FE | FF) FF FF }
    condition:
        any of them
}

rule hook_push_ret : hook inline
{
    meta:
        description = "push imm32; ret — 32-bit absolute trampoline, also push low / mov [rsp+4], high / ret"
        confidence = "medium: push imm32; ret also occurs by chance in data"
    strings:
        $a = { 68 ?? ?? ?? ?? C7 44 24 04 ?? ?? ?? ?? C3 }
    condition:
        $a
}

rule hook_amsi_scanbuffer_patch : hook amsi
{
    meta:
        description = "AmsiScanBuffer patched to return E_INVALIDARG (mov eax, 0x80070057; ret)"
        confidence = "high"
    strings:
        $a = { B8 57 00 07 80 C3 }
        $b = { B8 57 00 07 80 C2 18 00 }
    condition:
        any of them
}

rule hook_etw_eventwrite_patch : hook etw
{
    meta:
        description = "EtwEventWrite / NtTraceEvent neutered at the entry (xor rax, rax; ret, or ret 0x14 on x86)"
        confidence = "medium: the shape at a function entry; decisive when the region differs from its reference"
        scope = "changed regions"
    strings:
        // at a function entry: after int3 / nop padding, where a patched prologue starts;
        // `xor rax, rax; ret` inside a function body is ordinary compiler output
        $x64 = { (CC | 90) 48 33 C0 C3 }
        $x64b = { (CC | 90) 48 31 C0 C3 }
        $x86 = { (CC | 90) 33 C0 C2 14 00 }
    condition:
        any of them
}
