"""The original pipeline's joblib pickle, read as it was written.

Its layout, as that pipeline's preprocessing wrote it: a dict with `data`, a list of records
{patient_id, static_params, signal, v_peak, v_peak_mask, target}; `scaler`, the sklearn
StandardScaler fitted on the four static parameters [Age, Intensity, Stimulus Rate, FMP], which
the records' `static_params` are standardised by; `label_encoder`, whose `classes_` name the
hearing-loss classes `target` indexes; and `metadata`. `v_peak` is [wave V latency ms, amplitude
µV] in raw units, valid where `v_peak_mask` says so. Each `signal` was z-scored per recording and
its mean and SD were not kept (`readers` detects that and says so).

Here the stored scaler is inverted, so the conditions are raw units again; `v_peak_mask[0]`
marks a wave V, so a record without one counts as no response; `target` is kept with its names.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..config.names import canonical_static
from ..errors import UserError

LOOKS_STANDARDISED = (0.5, 0.5, 2.0)  # |column mean| below, column SD within: what a fitted StandardScaler leaves


def read_pickle(path: Path, static_order: list[str]) -> dict[str, Any]:
    """The records of the pickle at `path` with raw-unit conditions, marks, classes and notes for the user."""
    obj = _unpickle(path)
    records = obj.get("data") if isinstance(obj, dict) else obj  # the original also accepted a bare list
    if not isinstance(records, list) or not records:
        raise UserError(f"'{path}' must hold a dict with a non-empty list of records under 'data' (original layout)")
    parts = obj if isinstance(obj, dict) else {}
    _check_records(records, path)
    notes: list[str] = []
    static = np.stack([np.asarray(rec["static_params"], dtype=np.float64).ravel() for rec in records])
    static = _unscaled(static, parts.get("scaler"), path, notes)
    peak, mask = _v_peaks(records)
    raw: dict[str, Any] = {
        "signals": np.stack([np.asarray(rec["signal"], dtype=np.float64).ravel() for rec in records]),
        "static": static,
        "static_order": _static_order(parts.get("metadata"), static_order),
        "patient_id": np.array([rec["patient_id"] for rec in records]),
        "v_latency_ms": np.where(mask[:, 0], peak[:, 0], np.nan),
        "v_amplitude_uv": np.where(mask[:, 1], peak[:, 1], np.nan),
        "notes": notes,
    }
    if any("v_peak_mask" in rec or "v_peak" in rec for rec in records):
        raw["response_present"] = mask[:, 0]
    if all("target" in rec for rec in records):
        raw["target"], raw["class_names"] = _targets(records, parts.get("label_encoder"), path)
    return raw


def _unpickle(path: Path) -> Any:
    try:
        import joblib  # the original pipeline wrote its data with joblib.dump

        load = joblib.load
    except ImportError:
        load = _pickle_load
    try:
        return load(path)
    except ModuleNotFoundError as err:
        raise UserError(f"cannot read pickle '{path}': it needs the module '{err.name}'; install it") from None
    except Exception as err:  # unpickling can raise whatever a stored class raises
        raise UserError(f"cannot read pickle '{path}' ({type(err).__name__}: {err}); re-save it as .npz") from None


def _pickle_load(path: Path) -> Any:
    with path.open("rb") as f:
        return pickle.load(f)


def _check_records(records: list, path: Path) -> None:
    for i, rec in enumerate(records):
        missing = [k for k in ("patient_id", "static_params", "signal") if not isinstance(rec, dict) or k not in rec]
        if missing:
            raise UserError(
                f"record {i} of '{path}' has no '{missing[0]}'; each record needs patient_id, static_params and signal"
            )
    lengths = sorted({np.size(rec["signal"]) for rec in records})
    if len(lengths) > 1:
        raise UserError(f"'{path}': recordings have different lengths ({lengths} samples); abr-tune needs exactly "
                        "200 (10 ms at 20 kHz) and never interpolates")
    widths = sorted({np.size(rec["static_params"]) for rec in records})
    if len(widths) > 1:
        raise UserError(f"'{path}': static_params have different sizes ({widths}); each needs 4 values")


def _unscaled(static: np.ndarray, scaler: Any, path: Path, notes: list[str]) -> np.ndarray:
    """Raw units: the stored scaler inverted when the values look standardised by it."""
    if scaler is None:
        return static
    if not hasattr(scaler, "inverse_transform") or static.shape[1] != getattr(scaler, "n_features_in_", 4):
        raise UserError(f"'{path}': its 'scaler' ({type(scaler).__name__}) cannot invert 4 static_params; "
                        "store raw static_params or the StandardScaler fitted on them")
    mean, sd = static.mean(axis=0), static.std(axis=0)
    limit, low, high = LOOKS_STANDARDISED
    if len(static) > 1 and not ((np.abs(mean) < limit) & (sd > low) & (sd < high)).all():
        notes.append(f"static_params do not look standardised (column means {np.round(mean, 2).tolist()}), so "
                     f"the file's {type(scaler).__name__} is not applied; they are read as raw units")
        return static
    try:
        raw = np.asarray(scaler.inverse_transform(static), dtype=np.float64)
    except Exception as err:  # a stored scaler's own method: anything it raises
        raise UserError(f"'{path}': its scaler cannot invert static_params ({type(err).__name__}: {err})") from None
    notes.append(f"static_params were standardised by the file's stored {type(scaler).__name__}; it is inverted, "
                 "so the conditions are in raw units again (age years, intensity dB, rate /s, FMP)")
    return raw


def _v_peaks(records: list) -> tuple[np.ndarray, np.ndarray]:
    """([latency ms, amplitude µV], [latency valid, amplitude valid]) per record; no v_peak: nothing valid."""
    peak = np.stack([np.resize(np.asarray(rec.get("v_peak", np.nan), dtype=np.float64).ravel(), 2)
                     for rec in records])
    mask = np.stack([np.resize(np.asarray(rec.get("v_peak_mask", "v_peak" in rec), dtype=bool).ravel(), 2)
                     for rec in records])
    return peak, mask & np.isfinite(peak)


def _static_order(metadata: Any, configured: list[str]) -> list[str]:
    """The file's own order (metadata['static_parameters']) when it names the four, else data.static_order."""
    names = metadata.get("static_parameters") if isinstance(metadata, dict) else None
    order = [canonical_static(str(n)) for n in names] if isinstance(names, (list, tuple)) else []
    return order if len(order) == 4 and None not in order and len(set(order)) == 4 else list(configured)


def _targets(records: list, encoder: Any, path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    try:
        target = np.array([int(rec["target"]) for rec in records], dtype=np.int64)
    except (TypeError, ValueError):
        raise UserError(f"'{path}': 'target' must be a class index (an integer) in every record") from None
    classes = getattr(encoder, "classes_", None)
    names = tuple(str(c) for c in classes) if classes is not None else None
    if target.min() < 0 or (names is not None and target.max() >= len(names)):
        classes = f"the label encoder's {len(names)} classes" if names else "class indices >= 0"
        raise UserError(f"'{path}': 'target' runs {target.min()}..{target.max()}, outside {classes}; "
                        "the file is inconsistent")
    return target, names
