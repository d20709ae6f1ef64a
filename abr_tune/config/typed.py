"""One typed-schema engine for train configs and search-space files.

A value is checked against its dataclass annotation: Optional, Literal (allowed values
listed), lists element by element, ints accepted for floats (and YAML 1.1's "1e-4" string),
never NaN or inf for a float, never a bool for an int. Unknown keys are rejected with the closest valid name.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import UserError


@dataclass(frozen=True)
class Voice:
    """How one kind of file names a key, and lists allowed values, in its error messages."""

    name: Callable[[str], str]
    allowed: Callable[[tuple[Any, ...]], str]


CONFIG_VOICE = Voice(lambda key: f"config key '{key}'",
                     lambda values: "allowed values: " + ", ".join(repr(v) for v in values))
SPACE_VOICE = Voice(lambda key: f"search space: {key}", lambda values: "allowed: " + ", ".join(map(str, values)))

Section = Callable[[type, Any, str], Any]  # builds a nested dataclass section from its raw mapping


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def closest(name: str, options: Iterable[str], cutoff: float = 0.5) -> str | None:
    """The option most like `name` (difflib), or None."""
    found = difflib.get_close_matches(name, list(options), n=1, cutoff=cutoff)
    return found[0] if found else None


def coerce(value: Any, tp: Any, key: str, voice: Voice, section: Section | None = None) -> Any:
    """`value` checked against the annotation `tp`; `section` builds nested dataclasses."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and section is not None:
        return section(tp, value, key)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return coerce(value, next(a for a in args if a is not type(None)), key, voice, section)
    if origin is Literal:
        if value not in args:
            raise UserError(f"{voice.name(key)} is {value!r}; {voice.allowed(args)}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{voice.name(key)} must be a list, got {value!r}")
        item = args[0] if args else Any
        return [coerce(v, item, f"{key}[{i}]", voice, section) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{voice.name(key)} must be a dict, got {value!r}")
        return value
    if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return _finite_float(value, key, voice)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise UserError(f"{voice.name(key)} must be of type {tp.__name__}, got {value!r}")


def _finite_float(value: int | float | str, key: str, voice: Voice) -> float:
    """A float from a number or a numeric string (YAML 1.1 reads "1e-4" as a string); NaN and inf refused."""
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"{voice.name(key)} must be of type float, got {value!r}") from None
    except OverflowError:  # an int beyond float's range
        number = math.inf
    if not math.isfinite(number):
        raise UserError(f"{voice.name(key)} must be a finite number, got {value!r}")
    return number
