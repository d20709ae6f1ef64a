"""The in-memory dataset every source produces: raw units, one row per recording."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..config import STATIC_NAMES
from ..errors import UserError
from .conditions import CLINIC_UNITS, Conditions

MICROVOLT = "µV"
Z_SCORE = "z"  # each recording standardised on its own (the original pipeline's pickle): µV are lost
UNIT_LABELS = {MICROVOLT: "µV", Z_SCORE: "z (per-recording z-score)"}
# Where response presence and wave V truth come from.
TRUTH_SIMULATOR, TRUTH_MARKS, TRUTH_DETECTOR = "simulator", "marks", "detector"
YEARS_PER = {"years": 1.0, "months": 1 / 12, "weeks": 7 / 365.25, "days": 1 / 365.25}


@dataclass
class ABRArrays:
    """Recordings in raw units; static columns in `conditions.names` order (the clinic's: `config.STATIC_NAMES`)."""

    signals: np.ndarray  # (N, 200) float32, in `signal_unit` (µV unless the file held z-scores)
    static: np.ndarray  # (N, K) float32 numeric conditions; clinic: age years, intensity dB nHL, rate clicks/s, fmp
    patient_id: np.ndarray  # (N,) int64 or str
    v_latency_ms: np.ndarray  # (N,) float32, NaN where unknown or no response
    v_amplitude_uv: np.ndarray  # (N,) float32 peak-to-following-trough, NaN where unknown
    response_present: np.ndarray | None = None  # (N,) bool: the simulator's truth, or the file's marks
    clean_uv: np.ndarray | None = None  # (N, 200) float32 noise-free response, synthetic ground truth only
    target: np.ndarray | None = None  # (N,) int64 hearing-loss class index, when the file has one
    class_names: tuple[str, ...] | None = None  # name of each class index (the file's label encoder)
    signal_unit: str = MICROVOLT  # MICROVOLT or Z_SCORE
    truth: str = TRUTH_DETECTOR  # where response presence comes from: TRUTH_SIMULATOR, TRUTH_MARKS or TRUTH_DETECTOR
    conditions: Conditions = field(default_factory=Conditions)  # names and units of static, categorical labels
    labels: np.ndarray | None = None  # (N, C) str: each categorical condition's value, in conditions.labels order
    sample_rate_hz: float = 20000.0  # of `signals`: after any resampling
    start_ms: float = 0.0  # time of the first sample (data.window)
    constants: dict = field(default_factory=dict)  # conditions with one value in the whole file: {name: value}
    series_key: np.ndarray | None = None  # (N,) str level series of each row, kept by `measured()`
    file_facts: dict = field(default_factory=dict)  # what a file stated that the config records: its rate, order

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    @property
    def unit_label(self) -> str:
        """The signals' unit as figures and reports write it."""
        return UNIT_LABELS[self.signal_unit]

    def column(self, name: str) -> np.ndarray | None:
        """The numeric condition `name`, or None when the data does not condition on it."""
        names = self.conditions.names
        return self.static[:, names.index(name)] if name in names else None

    def level_series(self) -> np.ndarray:
        """(N,) str: the level series each recording belongs to, the recordings of one patient that share every
        condition but the level (intensity) and Fmp (a per-recording quality number, not a condition)."""
        if self.series_key is not None:
            return self.series_key
        parts = [np.asarray(self.patient_id).astype(str)]
        parts += [self.static[:, j].astype(str) for j, name in enumerate(self.conditions.names)
                  if name not in ("intensity", "fmp")]
        if self.labels is not None:
            parts += [self.labels[:, j].astype(str) for j in range(self.labels.shape[1])]
        return np.array(["|".join(row) for row in zip(*parts, strict=True)])

    def inputs_for(self, spec: Conditions) -> tuple[np.ndarray, np.ndarray | None]:
        """((N, K) numeric, (N, C) categorical or None) conditions in the order a model declares them (`spec`),
        a condition this data holds constant filled in; one the data lacks is a UserError."""
        if spec.names == self.conditions.names and spec.labels == self.conditions.labels:
            return self.static, self.labels
        columns = []
        for name in (*spec.names, *spec.labels):
            if name in self.conditions.names:
                columns.append(self.column(name))
            elif name in self.conditions.labels:
                columns.append(self.labels[:, self.conditions.labels.index(name)])
            elif name in self.constants:
                columns.append(np.full(len(self), self.constants[name]))
            else:
                raise UserError(f"the data has no condition '{name}', which the model was trained on (it declares "
                                f"{spec.summary()}; the data {self.conditions.summary()})")
        k = len(spec.names)
        static = np.stack(columns[:k], axis=1).astype(np.float32) if k else np.zeros((len(self), 0), np.float32)
        return static, (np.stack(columns[k:], axis=1).astype(str) if spec.labels else None)

    def titles(self) -> list[str] | None:
        """One panel title per recording, its conditions in their units; None for the clinic's four, which
        figures label their own way (`viz.waveforms.condition_label`)."""
        if self.conditions.is_clinic:
            return None
        labels = self.labels if self.labels is not None else np.empty((len(self), 0), dtype=str)
        return [self.conditions.describe(row, lab) for row, lab in zip(self.static, labels, strict=True)]

    def measured(self) -> ABRArrays:
        """These recordings with the clinic's four columns that the physiology measures read (`fidelity`,
        `physiology.measures`): the declared intensity, and age in years when its unit converts; 0 for a
        condition the data lacks, a constant those measures leave out (no effect is fitted to it)."""
        if self.conditions.is_clinic:
            return self
        view = np.zeros((len(self), len(STATIC_NAMES)), dtype=np.float32)
        for j, name in enumerate(STATIC_NAMES):
            column, unit = self.column(name), self.conditions.unit(name)
            if column is not None and (name != "age" or unit in YEARS_PER):
                view[:, j] = column * YEARS_PER.get(unit, 1.0) if name == "age" else column
        spec = Conditions(STATIC_NAMES, CLINIC_UNITS, self.conditions.labels, self.conditions.categories)
        return replace(self, static=view, conditions=spec, series_key=self.level_series())

    def subset(self, idx: np.ndarray) -> ABRArrays:
        """The recordings at `idx` (integer indices or a boolean mask)."""
        rows = ("signals", "static", "patient_id", "v_latency_ms", "v_amplitude_uv", "response_present", "clean_uv",
                "target", "labels", "series_key")
        return replace(self, **{k: None if getattr(self, k) is None else getattr(self, k)[idx] for k in rows})
