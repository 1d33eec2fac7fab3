"""What the builder plants, as records: VADs, loader entries, processes; time and path helpers."""
from __future__ import annotations

from dataclasses import dataclass, field

from memimage.paging import AddressSpace
from memimage.winobj import Heap

# VAD protection indices (MmProtectToValue) and types
PROT_READONLY, PROT_EXECUTE_READ, PROT_READWRITE = 1, 3, 4
PROT_EXECUTE_READWRITE, PROT_EXECUTE_WRITECOPY = 6, 7
VAD_NONE, VAD_IMAGE = 0, 2


def filetime(unix_seconds: int) -> int:
    return (unix_seconds + 11644473600) * 10_000_000


@dataclass
class Vad:
    start: int
    end: int  # exclusive
    protection: int
    private: bool
    vad_type: int = VAD_NONE
    file_name: str = ""
    commit: int = 0


@dataclass
class LdrEntry:
    base: int
    size: int
    full_name: str
    entry_point: int = 0
    timestamp: int = 0
    checksum: int = 0
    load_reason: int = 0
    hotpatch_state: int = 0
    active_patch_base: int = 0
    load_time: int = 0


@dataclass
class Process:
    pid: int
    name: str
    ppid: int
    create_time: int
    space: AddressSpace
    eprocess: int = 0
    peb: int = 0
    heap: Heap | None = None
    vads: list[Vad] = field(default_factory=list)
    modules: list[LdrEntry] = field(default_factory=list)
    hotpatched: bool = False


def nt_path(dos_path: str) -> str:
    """C:\\Windows\\... → \\Windows\\... as FILE_OBJECT.FileName holds it (no device part)."""
    return dos_path[2:] if len(dos_path) > 2 and dos_path[1] == ":" else dos_path
