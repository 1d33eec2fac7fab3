"""Fuzz the C row renderers (hpforensics._rowfmt behind outputs.CsvRows / JsonRows), which write
text an attacker wrote: whatever the rows hold (any code point, lone surrogates, huge ints,
floats, lists, rows of the wrong width or not lists at all), `lines` and `text` must give
exactly what the Python renderer (`py_lines`) gives, or raise the same error.

Input: byte 0: width (& 31); byte 1: guarded columns / JSON column names; then the cells.
The C code is not coverage-instrumented (atheris guides by the Python side); run it under
the sanitized build (tests/hostile/test_hostile_sanitizers.py) to check its memory use too.
"""
from __future__ import annotations

import atheris

import _harness

with _harness.instrumented():
    from hpforensics.timeline.outputs import CsvRows, JsonRows

_CACHE: dict[tuple, tuple[CsvRows, JsonRows]] = {}


def _outcome(fn, rows):
    try:
        return fn(rows)
    except Exception as exc:  # the same error, raised the same way, is the same outcome
        return type(exc), str(exc)


def _cell(fdp: atheris.FuzzedDataProvider):
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind <= 3:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40))  # surrogates included
    if kind == 4:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 10))  # past 64 bits too
    if kind == 5:
        return None
    if kind == 6:
        return fdp.ConsumeBool()
    if kind == 7:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()
    if kind == 8:
        return [fdp.ConsumeUnicode(4), fdp.ConsumeInt(2)]
    return fdp.ConsumeBytes(4)


def _renderers(width: int, mask: int, names: tuple[str, ...]) -> tuple[CsvRows, JsonRows]:
    key = (width, mask, names)
    if key not in _CACHE:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = (CsvRows(width, [i for i in range(width) if mask >> (i % 8) & 1]),
                       JsonRows(list(names)))
    return _CACHE[key]


def test_one(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    width = fdp.ConsumeIntInRange(0, 31)
    mask = fdp.ConsumeIntInRange(0, 255)
    names = tuple(fdp.ConsumeUnicodeNoSurrogates(3) for _ in range(width))  # may repeat
    rows: list = []
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        n = width if fdp.ConsumeProbability() < 0.9 else fdp.ConsumeIntInRange(0, 33)
        row = [_cell(fdp) for _ in range(n)]
        rows.append(tuple(row) if fdp.ConsumeBool() else row)
    for renderer in _renderers(width, mask, names):
        want = _outcome(renderer.py_lines, rows)
        got = _outcome(renderer.lines, rows)
        if got != want:
            raise AssertionError(f"lines differ: {got!r} != {want!r} for {rows!r}")
        joined = want if isinstance(want, tuple) else "".join(want)
        got = _outcome(renderer.text, rows)
        if got != joined:
            raise AssertionError(f"text differs: {got!r} != {joined!r} for {rows!r}")


if __name__ == "__main__":
    _harness.main(test_one)
