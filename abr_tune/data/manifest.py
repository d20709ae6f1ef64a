"""A lab's manifest: which recording files to read, whose they are, and under which conditions.

A CSV with a `file` column (paths relative to the manifest's folder) and a `subject` column; every
other column is a condition of all the recordings in that row's file. A column whose every cell is a
finite number is a numeric condition, its unit taken from its name's suffix (`age_months` is `age`
in months; see UNIT_SUFFIXES) and its values checked against that unit's physical range; any other
column is a categorical label (`time_point`, `treatment`), empty cells kept as ''. A `species`
column with one value is the data's species, not a label.

    file,subject,age_months,time_point,treatment
    Samp8 A1 baseline/1293_click.arf,1293,3,baseline,
    Samp8 A1 24h PSI/1293_click.arf,1293,3,24h,PSI
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

REQUIRED = ("file", "subject")
RESERVED = ("intensity", "frequency")  # taken from the recordings themselves
# Longest suffix first where one ends another (_khz before _hz).
UNIT_SUFFIXES = {
    "_db_spl": "dB SPL", "_db_nhl": "dB nHL", "_months": "months", "_years": "years", "_weeks": "weeks",
    "_days": "days", "_hours": "hours", "_khz": "kHz", "_hz": "Hz", "_ms": "ms", "_per_s": "/s", "_g": "g",
}
# Physical range of a value in each unit (a lifetime, an audible level, an audible frequency...).
UNIT_RANGES = {
    "dB SPL": (-50.0, 200.0), "dB nHL": (-50.0, 200.0), "months": (0.0, 1500.0), "years": (0.0, 125.0),
    "weeks": (0.0, 6600.0), "days": (0.0, 46000.0), "hours": (0.0, 1.1e6), "kHz": (0.0, 1000.0),
    "Hz": (0.0, 1e6), "ms": (0.0, 1e9), "/s": (0.0, 1e5), "g": (0.0, 1e7),
}


@dataclass
class Manifest:
    """The rows of a manifest; `numeric` maps a condition name to (unit, values), `labels` a name to values."""

    path: Path
    files: list[str]
    subjects: list[str]
    numeric: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    species: str | None = None

    def resolve(self, file: str) -> Path:
        """A `file` cell as a path: relative to the manifest's folder unless absolute."""
        return self.path.parent / file


def condition_name(column: str) -> tuple[str, str]:
    """(name, unit) of a numeric column: `age_months` -> ('age', 'months'); no known suffix: (column, '')."""
    for suffix, unit in UNIT_SUFFIXES.items():
        if column.lower().endswith(suffix) and len(column) > len(suffix):
            return column[: -len(suffix)], unit
    return column, ""


def read_manifest(path: str | Path) -> Manifest:
    """The manifest at `path`, every cell checked; any fault is a UserError naming the row or column."""
    path = Path(path)
    header, rows = _read_rows(path)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError(f"manifest '{path}' has no {' or '.join(missing)} column (its columns: {', '.join(header)}); "
                        "it needs a 'file' column (paths relative to its folder) and a 'subject' column")
    if not rows:
        raise UserError(f"manifest '{path}' lists no files: add one row per recording file under its header")
    for column in REQUIRED:
        empty = [n + 2 for n, row in enumerate(rows) if not row[column]]
        if empty:
            raise UserError(f"manifest '{path}': the {column} cell is empty on line(s) {_few(empty)}")
    manifest = Manifest(path, [r["file"] for r in rows], [r["subject"] for r in rows])
    for column in (c for c in header if c not in REQUIRED):
        _add_condition(manifest, column, [r[column] for r in rows])
    return manifest


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, skipinitialspace=True)
            header = [h.strip() for h in reader.fieldnames or []]
            rows = [{h: (row.get(raw) or "").strip() for h, raw in zip(header, reader.fieldnames or [], strict=True)}
                    for row in reader if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    except FileNotFoundError:
        raise UserError(f"manifest '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read manifest '{path}' as UTF-8 CSV ({err})") from None
    if not header:
        raise UserError(f"manifest '{path}' is empty: it needs a header row with 'file' and 'subject' columns")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise UserError(f"manifest '{path}' names column(s) {', '.join(duplicated)} twice")
    return header, rows


def _add_condition(manifest: Manifest, column: str, cells: list[str]) -> None:
    numbers = _numbers(cells)
    if column.lower() == "species" and numbers is None and len(set(cells)) == 1:
        manifest.species = cells[0]
        return
    if numbers is None and condition_name(column)[1]:
        bad = [n + 2 for n, c in enumerate(cells) if _numbers([c]) is None]
        raise UserError(f"manifest '{manifest.path}': column '{column}' names a unit ({condition_name(column)[1]}) "
                        f"but is not a finite number on line(s) {_few(bad)}; fill those cells")
    name, unit = condition_name(column) if numbers is not None else (column, "")
    taken = {*RESERVED, *manifest.numeric, *manifest.labels}
    if name.lower() in taken:
        raise UserError(f"manifest '{manifest.path}': column '{column}' would be the condition '{name}', which "
                        f"{'the recordings give' if name.lower() in RESERVED else 'another column already is'}; "
                        "rename the column")
    if numbers is None:
        manifest.labels[name] = cells
        return
    low, high = UNIT_RANGES.get(unit, (-math.inf, math.inf))
    bad = [n + 2 for n, v in enumerate(numbers) if not low <= v <= high]
    if bad:
        raise UserError(f"manifest '{manifest.path}': column '{column}' ({unit}) is outside [{low:g}, {high:g}] "
                        f"on line(s) {_few(bad)}")
    manifest.numeric[name] = (unit, numbers)


def _numbers(cells: list[str]) -> np.ndarray | None:
    """The cells as finite numbers, or None when any cell is not one (the column is then a label)."""
    try:
        values = np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


def _few(lines: list[int]) -> str:
    return ", ".join(map(str, lines[:5])) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
