"""Load the recordings `DataConfig` names: the simulator or a user file.

Every problem with a user file is a one-line UserError that names the file, what is
wrong and how to fix it. Signals are never resampled, cropped or interpolated.
"""

from __future__ import annotations

import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SEQUENCE_LENGTH, STATIC_NAMES, DataConfig
from ..errors import UserError
from .arrays import ABRArrays
from .synthetic import simulate

PICKLE_SUFFIXES = (".pkl", ".joblib")
SUPPORTED = ".npz, .csv, or .pkl/.joblib with data.allow_pickle: true"
OPTIONAL = ("v_latency_ms", "v_amplitude_uv")
Raw = dict[str, Any]  # signals, static (in the file's static_order), patient_id, optional OPTIONAL
_NEEDS_200 = f"abr-tune needs exactly {SEQUENCE_LENGTH} (10 ms at 20 kHz) and never interpolates"


def load_arrays(cfg: DataConfig) -> ABRArrays:
    """The simulator's recordings, or the validated contents of `cfg.path`."""
    if cfg.source == "synthetic":
        s = cfg.synthetic
        return simulate(s.n_subjects, s.recordings_per_subject, s.seed, cfg.sample_rate_hz)
    path = Path(cfg.path or "")
    if not path.is_file():
        raise UserError(f"data file not found: '{path}'; check data.path")
    suffix = path.suffix.lower()
    readers = {".npz": _read_npz, ".csv": _read_csv, **{s: _read_pickle for s in PICKLE_SUFFIXES}}
    if suffix not in readers:
        raise UserError(f"unsupported data file extension '{suffix}' for '{path}'; supported: {SUPPORTED}")
    if suffix in PICKLE_SUFFIXES and not cfg.allow_pickle:
        raise UserError(
            f"'{path}' is a pickle, which can run code when loaded; set data.allow_pickle: true only "
            "for files you trust, or convert it to .npz"
        )
    return _validated(readers[suffix](path, cfg.static_order), cfg.static_order, path)


# ---------------------------------------------------------------- readers (file → Raw)

def _read_npz(path: Path, static_order: list[str]) -> Raw:
    if not zipfile.is_zipfile(path):
        raise UserError(f"cannot read '{path}': not a valid .npz archive; write it with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            raw = {key: archive[key] for key in archive.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise UserError(
                f"'{path}' stores Python objects; save patient_id as integers or fixed-width strings "
                "(np.asarray(ids, dtype=str)) and every other array as numbers"
            ) from None
        raise UserError(f"cannot read '{path}' ({err}); re-save it with numpy.savez") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise UserError(f"cannot read '{path}' ({err}); the file is damaged, re-save it with numpy.savez") from None
    for key in ("signals", "static", "patient_id"):
        if key not in raw:
            raise UserError(
                f"'{path}' has no '{key}' array (found: {', '.join(raw) or 'none'}); an .npz needs "
                f"signals [N,{SEQUENCE_LENGTH}] in µV, static [N,4] and patient_id [N]"
            )
    return raw


def _read_csv(path: Path, static_order: list[str]) -> Raw:
    import pandas as pd  # a declared dependency: fast and memory-lean on 200-column files

    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        message = " ".join(str(err).split())
        raise UserError(f"cannot read '{path}' as CSV ({message}); save it as UTF-8 comma-separated text") from None
    frame.columns = [str(name).strip() for name in frame.columns]
    required = ["patient_id", *static_order]
    for name in required:
        if name not in frame.columns:
            raise UserError(
                f"'{path}' has no column '{name}'; the header needs {', '.join(required)} and "
                f"{SEQUENCE_LENGTH} sample columns (e.g. s0..s{SEQUENCE_LENGTH - 1})"
            )
    if frame.empty:
        raise UserError(f"'{path}' has no recordings; the CSV needs a header row and one row per recording")
    samples = [name for name in frame.columns if name not in (*required, *OPTIONAL)]
    raw = {
        "signals": _numbers(frame, samples, path),
        "static": _numbers(frame, static_order, path),
        "patient_id": frame["patient_id"].to_numpy(),
    }
    for name in OPTIONAL:
        if name in frame.columns:  # empty cells are read as NaN: "not marked"
            raw[name] = _numbers(frame, [name], path)[:, 0]
    return raw


def _read_pickle(path: Path, static_order: list[str]) -> Raw:
    obj = _unpickle(path)
    records = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(records, list) or not records:
        raise UserError(f"'{path}' must hold a dict with a non-empty list of records under 'data' (original layout)")
    return _records_to_raw(records, path)


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


def _records_to_raw(records: list, path: Path) -> Raw:
    """The original layout: [{'patient_id', 'static_params', 'signal', 'v_peak', 'v_peak_mask'}, ...]."""
    for i, rec in enumerate(records):
        missing = [k for k in ("patient_id", "static_params", "signal") if not isinstance(rec, dict) or k not in rec]
        if missing:
            raise UserError(
                f"record {i} of '{path}' has no '{missing[0]}'; each record needs patient_id, static_params and signal"
            )
    lengths = sorted({np.size(rec["signal"]) for rec in records})
    _check(len(lengths) == 1, f"'{path}': recordings have different lengths ({lengths} samples); " + _NEEDS_200)
    widths = sorted({np.size(rec["static_params"]) for rec in records})
    _check(len(widths) == 1, f"'{path}': static_params have different sizes ({widths}); each needs 4 values")
    peaks = np.stack([_v_peak(rec) for rec in records])
    return {
        "signals": np.stack([np.asarray(rec["signal"], dtype=np.float64).ravel() for rec in records]),
        "static": np.stack([np.asarray(rec["static_params"], dtype=np.float64).ravel() for rec in records]),
        "patient_id": np.array([rec["patient_id"] for rec in records]),
        "v_latency_ms": peaks[:, 0],
        "v_amplitude_uv": peaks[:, 1],
    }


def _v_peak(rec: dict) -> np.ndarray:
    """[latency, amplitude], NaN where 'v_peak_mask' says the value was not marked."""
    peak = np.resize(np.asarray(rec.get("v_peak", np.nan), dtype=np.float64).ravel(), 2)
    mask = np.resize(np.asarray(rec.get("v_peak_mask", True), dtype=bool).ravel(), 2)
    return np.where(mask, peak, np.nan)


def _numbers(frame: Any, columns: list[str], path: Path) -> np.ndarray:
    """The columns as a float array; the first cell that is not a number is named."""
    import pandas as pd

    try:
        return frame[columns].to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        for name in columns:
            bad = pd.to_numeric(frame[name], errors="coerce").isna() & frame[name].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                cell = frame[name].iloc[row]
                raise UserError(f"'{path}' row {row}, column '{name}' is not a number: {cell!r}") from None
        raise


# ---------------------------------------------------------------- validation (Raw → ABRArrays)

def _validated(raw: Raw, static_order: list[str], path: Path) -> ABRArrays:
    signals = np.asarray(raw["signals"])
    _check(signals.dtype.kind in "iuf" and signals.ndim == 2 and signals.shape[0] > 0,
           f"'{path}': signals must be a non-empty numeric array [N, {SEQUENCE_LENGTH}], "
           f"got shape {signals.shape} of {signals.dtype}")
    n, length = signals.shape
    _check(length == SEQUENCE_LENGTH, f"'{path}': signals have {length} samples per recording; " + _NEEDS_200)
    bad_signals = ~np.isfinite(signals).all(axis=1)
    _check_finite_rows(bad_signals, f"'{path}': signals contain NaN or Inf in", "remove or repair those recordings")
    static = np.asarray(raw["static"])
    _check(static.dtype.kind in "iuf" and static.ndim == 2,
           f"'{path}': static must be a numeric array [N, 4], got shape {static.shape} of {static.dtype}")
    _check(static.shape[1] == len(STATIC_NAMES),
           f"'{path}': static has {static.shape[1]} columns; abr-tune needs 4, in data.static_order {static_order}")
    optional = {k: np.asarray(raw.get(k, np.full(n, np.nan)), dtype=np.float64) for k in OPTIONAL}
    patient_id = np.asarray(raw["patient_id"])
    for name, arr in {"static": static, "patient_id": patient_id, **optional}.items():
        rows = arr.shape[0] if arr.ndim else 0
        _check(rows == n, f"'{path}': '{name}' has {rows} rows but signals has {n}; each needs one row per recording")
    finite = np.isfinite(static)
    columns = ", ".join(static_order[j] for j in np.flatnonzero(~finite.all(axis=0)))
    _check_finite_rows(~finite.all(axis=1), f"'{path}': static values ({columns}) are NaN or Inf in",
                       "fill them in or drop those rows")
    reorder = [static_order.index(name) for name in STATIC_NAMES]
    return ABRArrays(
        signals=signals.astype(np.float32),
        static=static[:, reorder].astype(np.float32),
        patient_id=_patient_ids(patient_id, path),
        v_latency_ms=optional["v_latency_ms"].astype(np.float32),
        v_amplitude_uv=optional["v_amplitude_uv"].astype(np.float32),
    )


def _patient_ids(ids: np.ndarray, path: Path) -> np.ndarray:
    _check(ids.ndim == 1, f"'{path}': patient_id must be one value per recording, got shape {ids.shape}")
    if ids.dtype.kind in "iu" or (ids.dtype.kind == "f" and np.isfinite(ids).all() and (ids == np.round(ids)).all()):
        return ids.astype(np.int64)
    if ids.dtype.kind in "US" or (ids.dtype.kind == "O" and all(isinstance(i, (str, int, np.integer)) for i in ids)):
        return ids.astype(str)
    raise UserError(f"'{path}': patient_id must be integers or strings, got {ids.dtype} values")


def _check_finite_rows(bad: np.ndarray, what: str, fix: str) -> None:
    rows = np.flatnonzero(bad)
    if rows.size:
        shown = ", ".join(map(str, rows[:5])) + (", ..." if rows.size > 5 else "")
        raise UserError(f"{what} {rows.size} recording(s) (0-based rows {shown}); {fix}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)
