"""Patient-level train/val/test split: no patient's recordings in two splits."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .arrays import ABRArrays


def split_by_patient(
    patient_id: np.ndarray, ratios: list[float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/val/test row indices; ratios share out patients, not recordings."""
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise UserError(f"data.split must be three non-negative ratios train/val/test, got {list(ratios)}")
    patients, row_patient = np.unique(np.asarray(patient_id), return_inverse=True)  # sorted: row order is irrelevant
    counts = _patient_counts(len(patients), np.asarray(ratios, dtype=np.float64) / sum(ratios))
    order = np.random.default_rng(seed).permutation(len(patients))
    split_of_patient = np.empty(len(patients), dtype=np.int64)
    split_of_patient[order] = np.repeat(np.arange(3), counts)
    split_of_row = split_of_patient[row_patient.ravel()]
    train, val, test = (np.flatnonzero(split_of_row == s) for s in range(3))
    return train, val, test


def some_patients(patient_id: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Row mask of the recordings of `n` patients drawn at random (seeded); every row when there are no more."""
    patients = np.unique(np.asarray(patient_id))
    if len(patients) <= n:
        return np.ones(len(patient_id), dtype=bool)
    return np.isin(patient_id, np.random.default_rng(seed).choice(patients, size=n, replace=False))


def _patient_counts(n_patients: int, ratios: np.ndarray) -> np.ndarray:
    """Largest-remainder share of patients; every split with a ratio > 0 gets at least one."""
    wanted = int((ratios > 0).sum())
    if n_patients < wanted:
        raise UserError(
            f"the data has {n_patients} distinct patient_id value(s) but data.split {ratios.round(3).tolist()} "
            f"needs at least {wanted}; add patients or set the unused split's ratio to 0"
        )
    exact = ratios * n_patients
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact, kind="stable")[: n_patients - counts.sum()]] += 1
    for s in np.flatnonzero((ratios > 0) & (counts == 0)):
        counts[np.argmax(counts)] -= 1  # the largest split can spare one: n_patients >= wanted
        counts[s] = 1
    return counts


def pick_reference_indices(arrays: ABRArrays, n: int, seed: int) -> np.ndarray:
    """`n` examples spread across intensities (sorted by intensity, else by the first numeric condition) so
    figures show the range."""
    rng = np.random.default_rng(seed)
    key = arrays.column("intensity")
    if key is None:
        key = arrays.static[:, 0] if arrays.static.shape[1] else np.zeros(len(arrays))
    order = np.argsort(key, kind="stable")
    n = min(n, len(order))
    positions = np.linspace(0, len(order) - 1, n).round().astype(int)
    jitter = rng.integers(0, max(1, len(order) // (2 * n) + 1), size=n)
    return order[np.clip(positions + jitter, 0, len(order) - 1)]
