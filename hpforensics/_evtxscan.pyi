# Types of the C record selector (csrc/evtxscan/module.c), for mypy; the module is compiled.
from collections.abc import Sequence

from typing_extensions import Buffer
from typing import Any, TypeVar

_R = TypeVar("_R")

class _Rules: ...

def rules(rules: Sequence[tuple[bytes, tuple[int, ...]]]) -> _Rules: ...
def select(chunk: Buffer, rules: _Rules
           ) -> None | tuple[int, int, tuple[int, ...], bool, tuple[int, ...] | None, int,
                             tuple[tuple[int, int], ...]]: ...
def decode(chunk: Buffer, offsets: tuple[int, ...], record_type: type[_R]) -> list[_R] | None: ...
def record_fields(decoded_json: Any
                  ) -> None | tuple[str, int, int, str, str, dict[str, str]]: ...
