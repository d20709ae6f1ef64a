"""The 200 samples the model sees, cut from a file's records only as the config says: never implicitly.

`data.resample_hz` resamples first, with scipy's polyphase filter (`scipy.signal.resample_poly`: an
anti-aliasing FIR low-pass at the lower Nyquist frequency, Kaiser window), e.g. 244 samples at
24,414 Hz to 20 kHz; `data.window` then keeps the 200 samples from its start (ms). A record longer
than 200 samples without a window is refused naming both ways forward; one shorter than the window
needs is refused too.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..config import SEQUENCE_LENGTH, DataConfig
from ..errors import UserError

MAX_FACTOR = 10_000  # up/down factors of the polyphase ratio: 24414 -> 20000 Hz is 10000/12207


def to_model_length(signals: np.ndarray, rate_hz: float, cfg: DataConfig, path: Path,
                    notes: list[str]) -> tuple[np.ndarray, float, float]:
    """(signals (N, 200), their sample rate, the window's start in ms) from (N, L) records at `rate_hz`."""
    length = signals.shape[1]
    if cfg.resample_hz and not np.isclose(cfg.resample_hz, rate_hz, rtol=1e-9):
        ratio = (Fraction(cfg.resample_hz).limit_denominator(MAX_FACTOR) /
                 Fraction(rate_hz).limit_denominator(MAX_FACTOR)).limit_denominator(2 * MAX_FACTOR)
        from scipy.signal import resample_poly

        signals = resample_poly(signals.astype(np.float64), ratio.numerator, ratio.denominator, axis=1)
        signals = signals.astype(np.float32)
        notes.append(f"resampled from {rate_hz:g} Hz to {cfg.resample_hz:g} Hz (data.resample_hz: polyphase, "
                     f"up {ratio.numerator} / down {ratio.denominator}): {length} -> {signals.shape[1]} samples")
        rate_hz = float(cfg.resample_hz)
    have = signals.shape[1]
    span = f"{have} samples per recording ({have / rate_hz * 1000:.4g} ms at {rate_hz:g} Hz)"
    if cfg.window is None:
        if have > SEQUENCE_LENGTH:
            last_ms = (SEQUENCE_LENGTH - 1) / rate_hz * 1000
            raise UserError(
                f"'{path}': signals have {span}; abr-tune models exactly {SEQUENCE_LENGTH}: set data.window to the "
                f"start (ms) of a {SEQUENCE_LENGTH}-sample window (0 keeps 0-{last_ms:.3g} ms), or data.resample_hz "
                f"to resample first (polyphase, anti-aliased; 20000 makes 10 ms exactly {SEQUENCE_LENGTH} samples)")
        if have < SEQUENCE_LENGTH:
            raise UserError(f"'{path}': signals have {span}; abr-tune needs exactly {SEQUENCE_LENGTH} and never pads"
                            f"{'' if cfg.resample_hz else ' (data.resample_hz to a higher rate can lengthen them)'}")
        return signals, rate_hz, 0.0
    start = int(round(cfg.window * rate_hz / 1000.0))
    if start + SEQUENCE_LENGTH > have:
        raise UserError(f"'{path}': signals have {span}, too short for a {SEQUENCE_LENGTH}-sample window from "
                        f"data.window {cfg.window:g} ms (sample {start}); lower data.window or change data.resample_hz")
    start_ms = start / rate_hz * 1000.0
    end_ms = (start + SEQUENCE_LENGTH - 1) / rate_hz * 1000.0
    later = f"; peak latencies are measured from the window's start, {start_ms:.3g} ms after onset" if start else ""
    notes.append(f"data.window keeps samples {start}-{start + SEQUENCE_LENGTH - 1} of {have} ({start_ms:.3g}-"
                 f"{end_ms:.3g} ms at {rate_hz:g} Hz){later}")
    return signals[:, start : start + SEQUENCE_LENGTH], rate_hz, start_ms
