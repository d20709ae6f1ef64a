"""Numbers for people and for JSON: one finiteness test, one JSON cleaner, one table-cell format, one table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def finite(value: Any) -> bool:
    """A real number (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def json_safe(value: Any) -> Any:
    """NaN/inf → None (strict JSON), numpy scalars → Python, through dicts, lists and tuples."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fmt_value(value: Any, digits: int = 4) -> str:
    """A table cell: `digits` significant digits for floats, "-" for None, str() otherwise."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table(rows: Sequence[Sequence[str]], rule: bool = True, trim: bool = True, right: bool = False) -> list[str]:
    """The lines of a text table: the first row is the head, each column left-aligned (`right`: right-aligned, for
    columns of numbers) to its widest cell, two spaces between columns. `trim` drops trailing spaces; `rule` puts a
    dashed line as long as the head under it."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    pad = str.rjust if right else str.ljust
    lines = ["  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines = [line.rstrip() for line in lines] if trim else lines
    if rule:
        lines.insert(1, "-" * len(lines[0]))
    return lines


def shell(path: object) -> str:
    """A path as a printed command needs it: quoted when it holds spaces or shell characters."""
    import shlex

    return shlex.quote(str(path))
