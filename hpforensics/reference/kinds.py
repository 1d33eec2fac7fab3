"""Names for the bytes the Windows loader (or kernel) legitimately writes into a mapped image.

Every masked range carries one of these so a difference can be explained by name. Two families:
`FIXED_VALUE` kinds are bytes whose final value we compute exactly (base relocations), so a
difference there is still a finding; every other kind holds a value only the running system
knows (resolved imports, CFG dispatch pointers, the security cookie, dynamic-relocation sites),
so it is hidden from the byte comparison and checked on its own.
"""
from __future__ import annotations

import enum


class MaskKind(str, enum.Enum):
    RELOCATION = "relocation"  # base relocation, applied exactly for the observed base
    HEADER_IMAGE_BASE = "header-image-base"  # OptionalHeader.ImageBase := the load address
    IAT = "iat"  # import address table slot, bound by the loader
    DELAY_IAT = "delay-iat"  # delay-load IAT slot: the thunk (relocated) or the bound import
    DELAY_HANDLE = "delay-handle"  # delay-load module handle slot
    CFG_POINTER = "cfg-pointer"  # CFG / XFG check and dispatch function pointers
    LOADCONFIG_SLOT = "loadconfig-slot"  # other load-config slots the OS fills (CastGuard mode)
    SECURITY_COOKIE = "security-cookie"  # /GS cookie initialised by the loader
    TLS_INDEX = "tls-index"  # TLS index slot written by the loader
    IMPORT_CONTROL_TRANSFER = "import-control-transfer"  # DVRT symbol 3 (retpoline / ICO)
    INDIRECT_CONTROL_TRANSFER = "indirect-control-transfer"  # DVRT symbol 4
    SWITCHTABLE_BRANCH = "switchtable-branch"  # DVRT symbol 5
    RF_PROLOGUE = "rf-prologue"  # DVRT symbol 1 (return-flow guard)
    RF_EPILOGUE = "rf-epilogue"  # DVRT symbol 2
    ARM64X = "arm64x"  # DVRT symbol 6
    FUNCTION_OVERRIDE = "function-override"  # DVRT symbol 7: rel32 retargeted by feature state
    FUNCTION_OVERRIDE_BDD = "function-override-bdd"  # the BDD decision data beside it
    KERNEL_IMPORT_CALL = "kernel-import-call"  # DVRT symbol 8 (ARM64 kernel import call)
    DYNAMIC_OTHER = "dynamic-relocation"  # a DVRT symbol we do not know: masked conservatively

    def __str__(self) -> str:
        return self.value


#: Kinds whose value we reproduce exactly: differences there are reported, not masked.
FIXED_VALUE = frozenset({MaskKind.RELOCATION, MaskKind.HEADER_IMAGE_BASE})

#: Kinds whose value is a pointer the loader resolves; checked to land in a mapped image.
POINTER_VALUE = frozenset(
    {MaskKind.IAT, MaskKind.DELAY_IAT, MaskKind.CFG_POINTER}
)

#: Dynamic value relocation symbol -> kind.
DVRT_KIND = {
    1: MaskKind.RF_PROLOGUE,
    2: MaskKind.RF_EPILOGUE,
    3: MaskKind.IMPORT_CONTROL_TRANSFER,
    4: MaskKind.INDIRECT_CONTROL_TRANSFER,
    5: MaskKind.SWITCHTABLE_BRANCH,
    6: MaskKind.ARM64X,
    7: MaskKind.FUNCTION_OVERRIDE,
    8: MaskKind.KERNEL_IMPORT_CALL,
}
