"""Nothing misread: signals in the wrong unit are refused; flat records and artifacts are left out, and said.

- Unit: a scalp ABR spans ~0.1-10 µV peak to peak (Hall, New Handbook of Auditory Evoked Responses,
  2007; mouse ABRs reach a few µV), so a median peak-to-peak below MIN_PTP_UV or above MAX_PTP_UV
  is a unit mistake. The upper bound is 100 µV, not 1 mV: the BioSigRZ development recordings have
  a median of 0.55 µV, which stored in nV (553) would pass a 1 mV bound as µV: the factor (V, mV, nV) that brings it nearest 1 µV is named, with the fix
  `data.signal_scale`.
- Flat: a record whose every sample is equal (all zero: nothing was recorded) is dropped.
- Artifacts: a record whose peak-to-peak exceeds `data.artifact_reject` (default 10) times the median
  of the records sharing its conditions (the whole data's median when fewer than MIN_GROUP share them)
  is dropped. The median is robust: one 200 µV artifact among 1 µV records does not move it, where
  it would move a mean or SD. A real response grows ~3-5x from threshold to the loudest level, and
  the comparison is within one condition, so 10x is far outside what physiology gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError

MIN_PTP_UV, MAX_PTP_UV = 0.01, 100.0
MIN_GROUP = 3
_UNITS = {"V": 1e6, "mV": 1e3, "nV": 1e-3}  # the factor to µV


def check_unit(signals: np.ndarray, path: Path) -> None:
    """Refuse signals whose median peak-to-peak is not a scalp ABR's in µV, naming the likely unit."""
    ptp = np.ptp(signals, axis=1)
    typical = float(np.median(ptp[ptp > 0])) if (ptp > 0).any() else 0.0
    if typical == 0.0 or MIN_PTP_UV <= typical <= MAX_PTP_UV:
        return
    unit = min(_UNITS, key=lambda u: abs(np.log10(typical * _UNITS[u])))
    raise UserError(f"'{path}': the recordings' median peak-to-peak is {typical:.3g}, outside an ABR's "
                    f"[{MIN_PTP_UV:g}, {MAX_PTP_UV:g}] µV: they look like {unit}; set data.signal_scale: "
                    f"{_UNITS[unit]:g} to convert them to µV")


def flat_rows(signals: np.ndarray) -> np.ndarray:
    """Rows whose samples are all equal (all zero included)."""
    return np.ptp(signals, axis=1) == 0


def artifact_rows(signals: np.ndarray, groups: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose peak-to-peak exceeds `factor` x their condition's median, that median per row)."""
    ptp = np.ptp(signals, axis=1).astype(np.float64)
    reference = np.full(len(ptp), np.median(ptp))
    _, group, counts = np.unique(groups, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    for g in np.flatnonzero(counts >= MIN_GROUP):
        reference[group == g] = np.median(ptp[group == g])
    return (ptp > factor * reference) if factor else np.zeros(len(ptp), dtype=bool), reference


def named_rows(rows: np.ndarray) -> str:
    shown = ", ".join(map(str, rows[:5])) + (", ..." if rows.size > 5 else "")
    return f"{rows.size} recording(s) (0-based rows {shown})"
