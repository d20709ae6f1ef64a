"""The valid range of every number a generation request holds: the four conditions in physical
units and the sampler's settings. Defined once; sample and evaluate check their flags against them
before torch loads, and a value outside its range is a UserError naming the flag and the range.

Condition bounds are physical limits, wider than any data set, not the trained range (that
one lives in the checkpoint's normaliser and only warns):
- age 0–120 years: from birth (ABRs are recorded in newborns) to the longest documented lifespans.
- intensity -20–140 dB nHL: nHL is relative to normal hearing threshold, so slightly negative
  levels exist; clinical clicks stop near 100 dB nHL, and 140 is beyond any safe transducer output.
- rate (0, 500] clicks/s: a rate must be positive; conventional averaging needs the click interval
  to exceed the 10 ms window (<= 100/s), maximum-length-sequence recordings reach a few hundred/s.
- fmp 0–1e5: Fmp is a variance ratio (Don & Elberling), so >= 0; recordings reach ~1500, and a
  ratio far beyond that is a unit or column mistake, not a measurement.
Condition units a recording file may declare (`UNITS`, for conditions other than the four):
- dB SPL, dB peSPL, dB HL -20–140, as dB nHL: below threshold to beyond any safe transducer output.
- years 0–120; months 0–1440, weeks 0–6240, days 0–43800: the same 120 years.
- Hz (0, 1e5]: a tone burst's frequency, positive; 100 kHz is above any mammal's hearing (mice
  hear to ~90 kHz); kHz (0, 100] the same.
- clicks/s and /s (0, 500], as rate; ms (0, 1000]: a stimulus duration or interval.
A unit not listed is checked for finiteness only, and said so.
Sampler settings:
- cfg_scale 0–50: 0 is unconditional, 1 conditional only, larger values extrapolate along the
  condition (Ho & Salimans, classifier-free guidance); beyond ~10 samples saturate, 50 is generous.
- eta 0–1: DDIM's eta runs from deterministic DDIM (0) to the DDPM posterior noise (1) (Song et
  al. 2021, eq. 16); above 1 the step adds more noise than the posterior has and the update's
  direction term is clamped at 0 (`diffusion/ddim.py`), so the sampler no longer follows eq. 12.
- seed 0–2**32-1: numpy's seeds are non-negative; 32 bits is numpy's classic seed range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class Range:
    """A closed interval [lo, hi] (left-open with `lo_open`) in `unit`; NaN and inf are never inside."""

    lo: float
    hi: float
    unit: str = ""
    lo_open: bool = False

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return False
        return (value > self.lo if self.lo_open else value >= self.lo) and value <= self.hi

    def __str__(self) -> str:
        interval = f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        return f"{interval} {self.unit}".rstrip()


CONDITIONS: dict[str, Range] = {
    "age": Range(0.0, 120.0, "years"),
    "intensity": Range(-20.0, 140.0, "dB nHL"),
    "rate": Range(0.0, 500.0, "clicks/s", lo_open=True),
    "fmp": Range(0.0, 1e5),
}
_LEVEL, _RATE = (-20.0, 140.0), (0.0, 500.0)
UNITS: dict[str, Range] = {
    **{unit: Range(*_LEVEL, unit) for unit in ("dB nHL", "dB SPL", "dB peSPL", "dB HL")},
    "years": Range(0.0, 120.0, "years"),
    "months": Range(0.0, 1440.0, "months"),
    "weeks": Range(0.0, 6240.0, "weeks"),
    "days": Range(0.0, 43800.0, "days"),
    "Hz": Range(0.0, 1e5, "Hz", lo_open=True),
    "kHz": Range(0.0, 100.0, "kHz", lo_open=True),
    **{unit: Range(*_RATE, unit, lo_open=True) for unit in ("clicks/s", "/s")},
    "ms": Range(0.0, 1000.0, "ms", lo_open=True),
}
CFG_SCALE = Range(0.0, 50.0)
DDIM_ETA = Range(0.0, 1.0)
SEED_MAX = 2**32 - 1


def condition_range(name: str, unit: str) -> Range | None:
    """The physical range of a condition: the clinic's own for its four in their units, else its unit's
    (`UNITS`); None for a unit without one (finite is all that can be checked)."""
    clinic = CONDITIONS.get(name)
    if clinic is not None and clinic.unit == unit:
        return clinic
    return UNITS.get(unit)


def check_in_range(flag: str, value: float | int, valid: Range) -> None:
    """Raise a UserError naming `flag`, its valid range and the value unless `value` lies in `valid`."""
    if value not in valid:
        raise UserError(f"{flag} must be a finite number in {valid}, got {value:g}")


def check_count(flag: str, value: int, lo: int = 1, hi: int | None = None) -> None:
    """An integer flag in [lo, hi] (no upper bound when `hi` is None)."""
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise UserError(f"{flag} must be an integer {allowed}, got {value}")
