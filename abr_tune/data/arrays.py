"""The in-memory dataset every source produces: raw units, one row per recording."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

MICROVOLT = "µV"
Z_SCORE = "z"  # each recording standardised on its own (the original pipeline's pickle): µV are lost
UNIT_LABELS = {MICROVOLT: "µV", Z_SCORE: "z (per-recording z-score)"}
# Where response presence and wave V truth come from.
TRUTH_SIMULATOR, TRUTH_MARKS, TRUTH_DETECTOR = "simulator", "marks", "detector"


@dataclass
class ABRArrays:
    """Recordings in raw units; static columns in `config.STATIC_NAMES` order."""

    signals: np.ndarray  # (N, 200) float32, in `signal_unit` (µV unless the file held z-scores)
    static: np.ndarray  # (N, 4) float32: age years, intensity dB nHL, rate clicks/s, fmp
    patient_id: np.ndarray  # (N,) int64 or str
    v_latency_ms: np.ndarray  # (N,) float32, NaN where unknown or no response
    v_amplitude_uv: np.ndarray  # (N,) float32 peak-to-following-trough, NaN where unknown
    response_present: np.ndarray | None = None  # (N,) bool: the simulator's truth, or the file's marks
    clean_uv: np.ndarray | None = None  # (N, 200) float32 noise-free response, synthetic ground truth only
    target: np.ndarray | None = None  # (N,) int64 hearing-loss class index, when the file has one
    class_names: tuple[str, ...] | None = None  # name of each class index (the file's label encoder)
    signal_unit: str = MICROVOLT  # MICROVOLT or Z_SCORE
    truth: str = TRUTH_DETECTOR  # where response presence comes from: TRUTH_SIMULATOR, TRUTH_MARKS or TRUTH_DETECTOR

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    @property
    def unit_label(self) -> str:
        """The signals' unit as figures and reports write it."""
        return UNIT_LABELS[self.signal_unit]

    def subset(self, idx: np.ndarray) -> ABRArrays:
        """The recordings at `idx` (integer indices or a boolean mask)."""
        rows = ("signals", "static", "patient_id", "v_latency_ms", "v_amplitude_uv", "response_present", "clean_uv",
                "target")
        return replace(self, **{k: None if getattr(self, k) is None else getattr(self, k)[idx] for k in rows})
