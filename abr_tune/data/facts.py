"""What a recording file says about itself: its sample rate, its conditions' names, units and categories.

A file's own fact replaces the config's default (a converted file needs no config edits); a value the
user set in the config or an override that disagrees with it is an error naming both
(`DataConfig.set_by_user` tells a set value from a default). The clinic's four conditions keep their
order and units; any other numeric condition keeps the file's order. A condition with one value in
the whole file carries no information: it is noticed and left out of the conditioning (the clinic's
four stay in their columns, where the normaliser encodes a constant as 0).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SEQUENCE_LENGTH, STATIC_NAMES, DataConfig
from ..errors import UserError
from ..physiology.ranges import condition_range
from .conditions import CLINIC_UNITS, Conditions

MAX_RATE_HZ = 1e6


def sample_rate(raw: dict[str, Any], cfg: DataConfig, path: Path, length: int) -> float:
    """The file's `sample_rate_hz`, else data.sample_rate_hz, which a record of other than 200 samples needs set."""
    user_set = "sample_rate_hz" in cfg.set_by_user
    if raw.get("sample_rate_hz") is None:
        if length != SEQUENCE_LENGTH and not user_set:
            raise UserError(f"'{path}': signals have {length} samples per recording and the file has no "
                            "sample_rate_hz; set data.sample_rate_hz to the rate they were recorded at (only "
                            f"{SEQUENCE_LENGTH}-sample records are known to be 10 ms at 20 kHz)")
        return cfg.sample_rate_hz
    stored = np.asarray(raw["sample_rate_hz"])
    rate = float(stored.ravel()[0]) if stored.size == 1 and stored.dtype.kind in "iuf" else math.nan
    if not 0 < rate <= MAX_RATE_HZ:
        raise UserError(f"'{path}': sample_rate_hz must be one number in (0, {MAX_RATE_HZ:g}] Hz, got "
                        f"{stored.tolist()!r}; store the recording rate as a scalar")
    if user_set and not math.isclose(rate, cfg.sample_rate_hz, rel_tol=1e-9):
        raise UserError(f"'{path}' was recorded at {rate:g} Hz (its sample_rate_hz) but data.sample_rate_hz is "
                        f"{cfg.sample_rate_hz:g}; remove data.sample_rate_hz to use the file's rate")
    return rate


def static_order(raw: dict[str, Any], cfg: DataConfig, path: Path) -> list[str]:
    """The file's `static_order`, else data.static_order; both set and different is an error."""
    if raw.get("static_order") is None:
        return [str(n) for n in cfg.static_order]
    names = [str(n).strip() for n in np.asarray(raw["static_order"]).ravel()]
    if "static_order" in cfg.set_by_user and names != [str(n) for n in cfg.static_order]:
        raise UserError(f"'{path}' stores its conditions in the order {names} (its static_order) but "
                        f"data.static_order is {list(cfg.static_order)}; remove data.static_order to use the file's")
    if len(set(names)) != len(names):
        raise UserError(f"'{path}': static_order {names} names a condition twice; name each column once")
    return names


def static_units(raw: dict[str, Any], names: list[str], path: Path) -> list[str]:
    """The file's `static_units`, else the clinic's units for the clinic's four and none for the others."""
    if raw.get("static_units") is None:
        return [CLINIC_UNITS[STATIC_NAMES.index(n)] if n in STATIC_NAMES else "" for n in names]
    units = [str(u).strip() for u in np.asarray(raw["static_units"]).ravel()]
    if len(units) != len(names):
        raise UserError(f"'{path}': static_units has {len(units)} entries for {len(names)} conditions {names}; "
                        "give one unit per static column ('' for a ratio)")
    return units


def labels(raw: dict[str, Any], n: int, path: Path) -> tuple[list[str], np.ndarray | None]:
    """The categorical conditions: (label_order, labels (N, C) str), or ([], None) when the file has none."""
    if raw.get("labels") is None:
        return [], None
    values = np.asarray(raw["labels"])
    values = values[:, None] if values.ndim == 1 else values
    names = [str(x) for x in np.asarray(raw.get("label_order", [f"label{j}" for j in range(values.shape[1])])).ravel()]
    if values.ndim != 2 or values.shape != (n, len(names)):
        raise UserError(f"'{path}': labels has shape {values.shape} but needs one row per recording and one column "
                        f"per label_order entry ({n}, {len(names)})")
    return names, values.astype(str)


def check_ranges(static: np.ndarray, names: list[str], units: list[str], path: Path, notes: list[str],
                 check_rows) -> None:
    """Each condition within its unit's physical range (`physiology.ranges`), the rows named."""
    unchecked = []
    for j, (name, unit) in enumerate(zip(names, units, strict=True)):
        valid, column = condition_range(name, unit), static[:, j].astype(np.float64)
        if valid is None:
            unchecked.append(f"{name} ({unit or 'no unit'})")
            continue
        bad = ((column <= valid.lo) if valid.lo_open else (column < valid.lo)) | (column > valid.hi)
        hint = " (negative values suggest standardised conditions: abr-tune needs raw units)" \
            if (column < 0).any() and valid.lo >= 0 else ""
        if bad.any():
            example = f"{column[np.flatnonzero(bad)[0]]:g}"
            check_rows(bad, f"'{path}': static '{name}' must lie in {valid}{hint}, e.g. not {example}, in",
                       "fix those values or drop those rows")
    if unchecked and set(names) != set(STATIC_NAMES):
        notes.append(f"no physical range is known for {', '.join(unchecked)}: only finiteness is checked")


def declare(static: np.ndarray, names: list[str], units: list[str], label_names: list[str],
            label_values: np.ndarray | None,
            notes: list[str]) -> tuple[np.ndarray, np.ndarray | None, Conditions, dict[str, Any]]:
    """(static, labels, Conditions, {name: value}) without the conditions constant in the data, which the last
    holds (so a model trained with them can still be given their value); the clinic's four are kept."""
    clinic = names == list(STATIC_NAMES)
    constant = [j for j in range(static.shape[1]) if np.unique(static[:, j]).size == 1]
    constant_labels = [j for j in range(len(label_names)) if np.unique(label_values[:, j]).size == 1]
    said = [f"{names[j]} = {static[0, j]:g}{' ' + units[j] if units[j] else ''}" for j in constant] + \
        [f"{label_names[j]} = {label_values[0, j]}" for j in constant_labels]
    if said:
        left = "; the clinic's four keep their columns, a constant one encodes to 0" if clinic and constant else ""
        notes.append(f"constant in the data, so left out of the conditioning: {', '.join(said)}{left}")
    keep = list(range(static.shape[1])) if clinic else [j for j in range(static.shape[1]) if j not in constant]
    keep_labels = [j for j in range(len(label_names)) if j not in constant_labels]
    values = None if not keep_labels else label_values[:, keep_labels]
    spec = Conditions(tuple(names[j] for j in keep), tuple(units[j] for j in keep),
                      tuple(label_names[j] for j in keep_labels),
                      tuple(tuple(np.unique(values[:, i]).tolist()) for i in range(len(keep_labels))))
    constants = {names[j]: float(static[0, j]) for j in constant if j not in keep}
    constants.update({label_names[j]: str(label_values[0, j]) for j in constant_labels})
    return static[:, keep], values, spec, constants
