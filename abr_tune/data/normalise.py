"""Invertible normalisation fitted on the train split and stored in checkpoints.

Signals: one global mean/std (µV). Static: FMP and age are clipped at 0 and compressed with
log1p, then every column is standardised. FMP's tail reaches ~1500; age spans 0–80 years while
the brainstem matures within the first ~2, so linearly scaled ages would crowd every infant into
3% of the input range (log1p gives 0–2 years a quarter of it). Works on numpy arrays and
torch tensors; `state_dict()` holds plain floats and lists (torch.load weights_only=True).
It also keeps the train split's raw per-column min/max, so a generator can say when a condition
lies outside what the model saw (checkpoints written before that have none and say nothing).
The columns are the data's declared numeric conditions (`conditions.Conditions`, the clinic's four
by default), stored with their names, units and categories; `encode_conditions` appends the
categorical conditions' one-hot block, giving the model's condition input.
The signal scale is robust: records whose peak-to-peak exceeds ROBUST_PTP x the median (artifacts a
file kept with data.artifact_reject: 0) are left out of the mean and SD, so one 200 µV artifact does
not set the scale of 1 µV recordings; data without such records get the plain mean and SD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import STATIC_NAMES
from ..errors import UserError
from .conditions import CLINIC, Conditions

STD_FLOOR = 1e-6  # a constant column (e.g. one intensity only) encodes to 0, not inf
LOG1P_STATIC = ("age", "fmp")  # compressed before standardising in every new fit
LEGACY_LOG1P_STATIC = ("fmp",)  # checkpoints written before age was compressed
ROBUST_PTP = 10.0  # records beyond this x the median peak-to-peak do not enter the signal statistics


@dataclass
class Normaliser:
    """Fitted statistics: signals by a scalar mean/std, static per column after log1p of `log1p_static`."""

    signal_mean: float
    signal_std: float
    static_mean: list[float]
    static_std: list[float]
    log1p_static: tuple[str, ...] = LOG1P_STATIC
    static_min: list[float] | None = None  # the train split's raw range per column
    static_max: list[float] | None = None
    conditions: Conditions = CLINIC

    @classmethod
    def fit(cls, signals: np.ndarray, static: np.ndarray, conditions: Conditions = CLINIC) -> Normaliser:
        """Fit on the train split: signals (N, T) µV, static (N, K) raw units in `conditions.names` order."""
        signals = np.asarray(signals, dtype=np.float64)
        ptp = np.ptp(signals, axis=1)
        typical = signals[ptp <= ROBUST_PTP * np.median(ptp)] if len(signals) else signals
        signals = typical if len(typical) else signals
        compressed = np.array(static, dtype=np.float64).reshape(len(static), len(conditions.names))
        raw_min, raw_max = compressed.min(axis=0, initial=np.inf), compressed.max(axis=0, initial=-np.inf)
        cols = _columns(LOG1P_STATIC, conditions)
        compressed[:, cols] = np.log1p(np.clip(compressed[:, cols], 0, None))
        return cls(
            signal_mean=float(signals.mean()),
            signal_std=float(max(signals.std(), STD_FLOOR)),
            static_mean=[float(v) for v in compressed.mean(axis=0)],
            static_std=[float(max(v, STD_FLOOR)) for v in compressed.std(axis=0)],
            static_min=[float(v) for v in raw_min],
            static_max=[float(v) for v in raw_max],
            conditions=conditions,
        )

    def encode_signals(self, signals: Any) -> Any:
        """µV → model units."""
        return (signals - self.signal_mean) / self.signal_std

    def decode_signals(self, encoded: Any) -> Any:
        """Model units → µV (exact inverse of encode_signals)."""
        return encoded * self.signal_std + self.signal_mean

    def encode_conditions(self, static: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """(N, K) raw numeric conditions and (N, C) categories → the model's (N, static_dim) condition input."""
        static = np.atleast_2d(np.asarray(static, dtype=np.float32))
        encoded = self.encode_static(static)
        if not self.conditions.labels:
            return encoded
        return np.concatenate([encoded, self.conditions.one_hot(labels, len(static))], axis=1)

    def encode_static(self, static: Any) -> Any:
        """(…, K) raw units → standardised, `log1p_static` columns through log1p first."""
        xp, work = _working_copy(static)
        cols = _columns(self.log1p_static, self.conditions)
        work[..., cols] = xp.log1p(xp.clip(work[..., cols], 0, None))
        mean, std = self._static_stats(work)
        return _cast_like((work - mean) / std, static)

    def decode_static(self, encoded: Any) -> Any:
        """Standardised → (…, K) raw units; exact inverse of encode_static for FMP, age >= 0."""
        xp, work = _working_copy(encoded)
        mean, std = self._static_stats(work)
        work = work * std + mean
        cols = _columns(self.log1p_static, self.conditions)
        work[..., cols] = xp.expm1(work[..., cols])
        return _cast_like(work, encoded)

    def state_dict(self) -> dict[str, Any]:
        """Plain Python floats and lists only, safe for torch.load(weights_only=True)."""
        return {
            "signal_mean": self.signal_mean,
            "signal_std": self.signal_std,
            "static_mean": list(self.static_mean),
            "static_std": list(self.static_std),
            "static_names": list(self.conditions.names),
            "log1p_static": list(self.log1p_static),
            **({"static_min": list(self.static_min), "static_max": list(self.static_max)}
               if self.static_min is not None and self.static_max is not None else {}),
            **({} if self.conditions == CLINIC else {"conditions": self.conditions.state_dict()}),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Normaliser:
        """Rebuild from `state_dict()` output (e.g. read back from a checkpoint)."""
        conditions = Conditions.from_state_dict(state.get("conditions"))
        if list(state.get("static_names", STATIC_NAMES)) != list(conditions.names):
            raise UserError(f"the checkpoint's normaliser has static columns {state['static_names']}, "
                            f"its conditions declare {list(conditions.names)}; re-train with this version")
        k = len(conditions.names)
        try:
            norm = cls(
                signal_mean=float(state["signal_mean"]),
                signal_std=float(state["signal_std"]),
                static_mean=[float(v) for v in state["static_mean"]],
                static_std=[float(v) for v in state["static_std"]],
                log1p_static=tuple(state.get("log1p_static", LEGACY_LOG1P_STATIC)),
                static_min=_floats_or_none(state.get("static_min"), k),
                static_max=_floats_or_none(state.get("static_max"), k),
                conditions=conditions,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"the checkpoint's normaliser is incomplete or malformed ({type(err).__name__}: {err}); "
                            "use a checkpoint written by abr-tune's training") from None
        stats = [norm.signal_mean, norm.signal_std, *norm.static_mean, *norm.static_std]
        if len(norm.static_mean) != k or len(norm.static_std) != k \
                or not np.isfinite(stats).all() or norm.signal_std <= 0 or min(norm.static_std, default=1.0) <= 0:
            raise UserError("the checkpoint's normaliser holds non-finite, zero or misshapen statistics; "
                            "use a checkpoint written by abr-tune's training")
        return norm

    def untrained(self, static_raw: np.ndarray) -> list[str]:
        """One line per condition column where `static_raw` (M, K) leaves the train split's range.

        Empty for checkpoints written before the range was kept. The model extrapolates there:
        the result is a guess, which is why it is said.
        """
        if self.static_min is None or self.static_max is None:
            return []
        names = self.conditions.names
        rows = np.asarray(static_raw, dtype=np.float64).reshape(-1, len(names))
        lines = []
        for c, name in enumerate(names):
            lo, hi, unit = self.static_min[c], self.static_max[c], self.conditions.units[c]
            below, above = rows[rows[:, c] < lo, c], rows[rows[:, c] > hi, c]
            if not (below.size or above.size):
                continue
            trained = f"[{lo:.4g}, {hi:.4g}]{' ' + unit if unit else ''}"
            if len(rows) == 1:
                lines.append(f"{name} {rows[0, c]:.4g}{' ' + unit if unit else ''} is outside the range the model "
                             f"was trained on, {trained}; it extrapolates there")
                continue
            sides = ([f"{below.size} below it, down to {below.min():.4g}"] if below.size else []) + \
                ([f"{above.size} above it, up to {above.max():.4g}"] if above.size else [])
            lines.append(f"{below.size + above.size} of {len(rows)} conditions have {name} outside the range the "
                         f"model was trained on, {trained} ({'; '.join(sides)}); it extrapolates there")
        return lines

    def _static_stats(self, like: Any) -> tuple[Any, Any]:
        if isinstance(like, np.ndarray):
            return np.asarray(self.static_mean), np.asarray(self.static_std)
        import torch

        return (torch.as_tensor(self.static_mean, dtype=like.dtype, device=like.device),
                torch.as_tensor(self.static_std, dtype=like.dtype, device=like.device))


def _floats_or_none(values: Any, k: int) -> list[float] | None:
    if values is None:
        return None
    floats = [float(v) for v in values]
    if len(floats) != k:
        raise ValueError(f"a trained range needs {k} values, got {len(floats)}")
    return floats


def _columns(names: tuple[str, ...], conditions: Conditions) -> list[int]:
    """The columns of `names` among the conditions (age in any unit and Fmp are compressed by log1p)."""
    return [conditions.names.index(name) for name in names if name in conditions.names]


def _working_copy(x: Any) -> tuple[Any, Any]:
    """(namespace, copy): tensors stay torch in their dtype; anything else becomes float64 numpy."""
    if type(x).__module__.partition(".")[0] == "torch":
        import torch  # only when a tensor is passed: numpy callers never pay torch's import

        return torch, x.clone()
    return np, np.array(x, dtype=np.float64)


def _cast_like(out: Any, like: Any) -> Any:
    """Give numpy results the input's float dtype (float32 in, float32 out)."""
    if isinstance(like, np.ndarray) and like.dtype.kind == "f":
        return out.astype(like.dtype, copy=False)
    return out
