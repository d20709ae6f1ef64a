"""The in-memory dataset every source produces: raw units, one row per recording."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ABRArrays:
    """Recordings in raw units; static columns in `config.STATIC_NAMES` order."""

    signals: np.ndarray  # (N, 200) float32, µV
    static: np.ndarray  # (N, 4) float32: age years, intensity dB nHL, rate clicks/s, fmp
    patient_id: np.ndarray  # (N,) int64 or str
    v_latency_ms: np.ndarray  # (N,) float32, NaN where unknown or no response
    v_amplitude_uv: np.ndarray  # (N,) float32 peak-to-following-trough, NaN where unknown
    response_present: np.ndarray | None = None  # (N,) bool, synthetic ground truth only
    clean_uv: np.ndarray | None = None  # (N, 200) float32 noise-free response, synthetic ground truth only

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    def subset(self, idx: np.ndarray) -> ABRArrays:
        """The recordings at `idx` (integer indices or a boolean mask)."""
        present = None if self.response_present is None else self.response_present[idx]
        clean = None if self.clean_uv is None else self.clean_uv[idx]
        return ABRArrays(
            signals=self.signals[idx],
            static=self.static[idx],
            patient_id=self.patient_id[idx],
            v_latency_ms=self.v_latency_ms[idx],
            v_amplitude_uv=self.v_amplitude_uv[idx],
            response_present=present,
            clean_uv=clean,
        )
