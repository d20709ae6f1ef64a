"""A generation request's conditions: `--condition NAME=VALUE` (and the clinic's --age/--intensity/--rate/--fmp)
checked against the conditions a checkpoint declares.

Each numeric value must be finite and inside its unit's physical range (`physiology.ranges`);
each category one the model was trained on. The clinic's four flags are the conditions of the same
name in the clinic's units: a model whose age is in months takes `--condition age=3`.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import STATIC_NAMES
from ..errors import UserError
from ..physiology.ranges import CONDITIONS, check_in_range, condition_range
from .conditions import Conditions, shown_category


def parse_pairs(pairs: list[str] | None) -> dict[str, str]:
    """{name: value} from NAME=VALUE strings; a malformed or repeated one is a UserError."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:  # an empty VALUE names an empty category (a blank manifest cell)
            raise UserError(f"--condition takes NAME=VALUE, e.g. --condition intensity=70, got {pair!r}")
        if name in out:
            raise UserError(f"--condition {name} is given twice ({out[name]} and {value}); give it once")
        out[name] = value
    return out


def check_clinic_flags(flags: dict[str, float | None]) -> None:
    """The clinic's four flags in their physical ranges (before anything is loaded)."""
    for name, value in flags.items():
        if value is not None:
            check_in_range(f"--{name}", value, CONDITIONS[name])


def resolve(conditions: Conditions, pairs: dict[str, str],
            flags: dict[str, float | None]) -> tuple[np.ndarray, np.ndarray | None]:
    """((1, K) numeric conditions, (1, C) categories or None) for one request, every value checked."""
    given = dict(pairs)
    for name, value in flags.items():
        if value is None:
            continue
        if name in given:
            raise UserError(f"--{name} and --condition {name}= both give {name}; give it once")
        if name in conditions.names and conditions.unit(name) != CONDITIONS[name].unit:
            raise UserError(f"this model's {name} is in {conditions.unit(name) or 'no unit'}, not "
                            f"{CONDITIONS[name].unit}: give it as --condition {name}=VALUE")
        given[name] = repr(value)
    declared = (*conditions.names, *conditions.labels)
    unknown = [name for name in given if name not in declared]
    if unknown:
        raise UserError(f"the model has no condition '{unknown[0]}'; it declares {conditions.summary()}")
    missing = [name for name in declared if name not in given]
    if missing:
        flag = f"--{missing[0]}" if conditions.is_clinic and missing[0] in STATIC_NAMES else \
            f"--condition {missing[0]}=VALUE"
        raise UserError(f"no value for {', '.join(missing)}: give {flag}; the model declares {conditions.summary()}")
    static = np.array([[_number(name, given[name], conditions.unit(name)) for name in conditions.names]],
                      dtype=np.float32).reshape(1, len(conditions.names))
    if not conditions.labels:
        return static, None
    for name, cats in zip(conditions.labels, conditions.categories, strict=True):
        if given[name] not in cats:
            raise UserError(f"{name} '{given[name]}' is not a category the model was trained on; valid: "
                            f"{', '.join(map(shown_category, cats))}")
    return static, np.array([[given[name] for name in conditions.labels]])


def _number(name: str, text: str, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--condition {name} must be a number{' in ' + unit if unit else ''}, got {text!r}") from None
    valid = condition_range(name, unit)
    if valid is None:
        if not math.isfinite(value):
            raise UserError(f"--condition {name} must be a finite number, got {text}")
        return value
    check_in_range(f"--condition {name}", value, valid)
    return value


def matching_rows(static: np.ndarray, labels: np.ndarray | None, conditions: Conditions,
                  pairs: dict[str, str]) -> np.ndarray:
    """Indices of the rows whose conditions (in the model's order, `conditions`) equal every one of `pairs`,
    each checked as in `resolve`."""
    declared = (*conditions.names, *conditions.labels)
    keep = np.ones(len(static), dtype=bool)
    for name, text in pairs.items():
        if name not in declared:
            raise UserError(f"the model has no condition '{name}'; it declares {conditions.summary()}")
        if name in conditions.names:
            value = _number(name, text, conditions.unit(name))
            keep &= np.isclose(static[:, conditions.names.index(name)], value)
            continue
        cats = conditions.categories[conditions.labels.index(name)]
        if text not in cats:
            raise UserError(f"{name} '{text}' is not a category the model was trained on; valid: {', '.join(cats)}")
        keep &= labels[:, conditions.labels.index(name)] == text
    if not keep.any():
        shown = ", ".join(f"{k}={v}" for k, v in pairs.items())
        raise UserError(f"no recording of the split has {shown}; choose values the data holds or another --split")
    return np.flatnonzero(keep)
