"""Data: the embedded simulator, user-file readers, patient-level split and normaliser."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DataConfig
from .arrays import ABRArrays
from .conditions import CLINIC, Conditions
from .normalise import Normaliser
from .readers import load_arrays
from .split import pick_reference_indices, some_patients, split_by_patient
from .synthetic import simulate

__all__ = ["ABRArrays", "CLINIC", "Conditions",
           "Normaliser", "Splits", "load_arrays", "pick_reference_indices", "prepare_splits", "simulate",
           "split_by_patient"]


@dataclass
class Splits:
    """Patient-disjoint splits in raw units, and the normaliser fitted on `train`."""

    train: ABRArrays
    val: ABRArrays
    test: ABRArrays
    normaliser: Normaliser


def prepare_splits(cfg: DataConfig, arrays: ABRArrays | None = None) -> Splits:
    """Load (unless `arrays` is given), split by patient with cfg.split/split_seed, fit on train.

    Arrays loaded elsewhere (a search loads a file once for all its trials) bring the facts the file
    stated, its sample rate and condition order, into `cfg` as loading it here would: what is recorded
    (config.yaml, checkpoints) is what the recordings are."""
    if arrays is None:
        arrays = load_arrays(cfg)
    else:
        for key, value in arrays.file_facts.items():
            setattr(cfg, key, value)
    if cfg.max_subjects is not None:
        arrays = arrays.subset(some_patients(arrays.patient_id, cfg.max_subjects, cfg.split_seed))
    train, val, test = (arrays.subset(idx) for idx in split_by_patient(arrays.patient_id, cfg.split, cfg.split_seed))
    return Splits(train, val, test, Normaliser.fit(train.signals, train.static, arrays.conditions))
