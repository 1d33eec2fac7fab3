"""Reading kernel structures as raw bytes, with member offsets taken from the symbol table.

Volatility's object model costs a few microseconds per member access; walking every VAD node
and loader entry of every process through it dominates an analysis. Here each needed member's
(offset, size, bit range) is resolved once from the loaded ISF — the layout is still the symbol
table's, never hard-coded — and nodes are decoded from one `layer.read` each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from volatility3.framework import constants, exceptions


@dataclass(frozen=True)
class Member:
    offset: int
    size: int
    start_bit: int | None = None  # bitfield: [start_bit, end_bit)
    end_bit: int | None = None

    def get(self, data: bytes, base: int = 0) -> int:
        value = int.from_bytes(data[base + self.offset : base + self.offset + self.size], "little")
        if self.start_bit is not None and self.end_bit is not None:
            value = (value >> self.start_bit) & ((1 << (self.end_bit - self.start_bit)) - 1)
        return value


def _resolve_type(module, template):
    name = template.vol.get("type_name", "")
    if template.vol.get("object_class") is None and constants.BANG in name:
        return module.get_type(name.split(constants.BANG, 1)[1])
    return template


class Layout:
    """Members of one structure type, addressed by dotted paths such as
    `Core.u.VadFlags.VadType`."""

    def __init__(self, module, type_name: str, paths: Sequence[str]) -> None:
        self.type_name = type_name
        root = module.get_type(type_name)
        self.size = root.size
        self.members: dict[str, Member] = {}
        for path in paths:
            offset, template = 0, root
            for part in path.split("."):
                template = _resolve_type(module, template)
                off, template = template.vol.members[part]
                offset += off
            template = _resolve_type(module, template)
            vol = template.vol
            if "start_bit" in vol:
                self.members[path] = Member(
                    offset, vol["base_type"].size, vol["start_bit"], vol["end_bit"]
                )
            else:
                self.members[path] = Member(offset, template.size)

    def __getitem__(self, path: str) -> Member:
        return self.members[path]

    def has(self, path: str) -> bool:
        return path in self.members


def try_layout(module, type_name: str, paths: Sequence[str]) -> Layout | None:
    try:
        return Layout(module, type_name, paths)
    except (KeyError, exceptions.SymbolError, AttributeError):
        return None


def read(layer, address: int, size: int) -> bytes | None:
    try:
        return layer.read(address & layer.address_mask, size)
    except exceptions.InvalidAddressException:
        return None


def unicode(layer, data: bytes, base: int, layout: Layout, prefix: str) -> str:
    """A _UNICODE_STRING member decoded from `layer` (empty when unreadable)."""
    length = layout[f"{prefix}.Length"].get(data, base)
    buffer = layout[f"{prefix}.Buffer"].get(data, base)
    if not length or not buffer or length > 0x1000:
        return ""
    raw = read(layer, buffer, length)
    return raw.decode("utf-16-le", "replace") if raw else ""
