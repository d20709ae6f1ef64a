"""Load the recordings `DataConfig` names: the simulator or a user file.

Every problem with a user file is a one-line UserError that names the file, what is
wrong and how to fix it. Signals are resampled or cut only as data.resample_hz and data.window
say (`timebase`); the file's own sample rate and conditions replace the config's defaults
(`facts`); flat records and artifacts are dropped and wrong units refused (`checks`). What the
reading found that changes how to read the results (a scaler inverted, z-scored signals,
where the truth comes from, what was dropped) is said in one notice per file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SEQUENCE_LENGTH, STATIC_NAMES, DataConfig
from ..errors import UserError, notice
from . import checks, facts
from .arrays import MICROVOLT, TRUTH_DETECTOR, TRUTH_MARKS, Z_SCORE, ABRArrays
from .csv_file import read_csv
from .npz_file import read_npz
from .original_pickle import read_pickle
from .synthetic import simulate
from .timebase import to_model_length

PICKLE_SUFFIXES = (".pkl", ".joblib")
SUPPORTED = ".npz, .csv, or .pkl/.joblib with data.allow_pickle: true"
OPTIONAL = ("v_latency_ms", "v_amplitude_uv")
# signals, static (in raw["static_order"]), patient_id; optional OPTIONAL, response_present, target,
# class_names, notes
Raw = dict[str, Any]
MAX_SIGNAL_UV = 1e4  # 10 mV: far beyond any scalp ABR (a few µV), so a unit mistake (nV, V) or garbage
MAX_LATENCY_MS = 100.0  # a wave V mark beyond this is not a latency in ms
Z_TOLERANCE = 1e-3  # |row mean| and |row SD - 1| below this: the row was z-scored
Z_SHARE = 0.99  # of the rows that vary: the original left a few near-constant rows as they were


def load_arrays(cfg: DataConfig) -> ABRArrays:
    """The simulator's recordings, or the validated contents of `cfg.path`. A file's sample rate and
    condition order become `cfg.sample_rate_hz` and `cfg.static_order` (what is recorded is what ran)."""
    if cfg.source == "synthetic":
        s = cfg.synthetic
        return simulate(s.n_subjects, s.recordings_per_subject, s.seed, cfg.sample_rate_hz)
    path = Path(cfg.path or "")
    if not path.is_file():
        raise UserError(f"data file not found: '{path}'; check data.path")
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".csv", *PICKLE_SUFFIXES):
        raise UserError(f"unsupported data file extension '{suffix}' for '{path}'; supported: {SUPPORTED}")
    if suffix in PICKLE_SUFFIXES and not cfg.allow_pickle:
        raise UserError(
            f"'{path}' is a pickle, which can run code when loaded: for a file you trust, add "
            "--override \"data.allow_pickle: true\" (or data.allow_pickle: true in the config); otherwise convert "
            "it to .npz"
        )
    if cfg.columns and suffix != ".csv":
        raise UserError(f"data.columns names CSV headers, but '{path}' is not a CSV; remove data.columns")
    if suffix == ".csv":
        raw = read_csv(path, cfg.columns)
    elif suffix == ".npz":
        raw = read_npz(path)
        raw["static_order"] = cfg.static_order = facts.static_order(raw, cfg, path)  # the file's, when it has one
    else:
        raw = read_pickle(path, cfg.static_order)
    arrays, notes = _validated(raw, path, cfg)
    if notes:
        notice(f"reading '{path}':", notes)
    return arrays


# ---------------------------------------------------------------- validation (Raw → ABRArrays)

def _validated(raw: Raw, path: Path, cfg: DataConfig) -> tuple[ABRArrays, list[str]]:
    """The checked recordings (float32, 200 samples, static in the declared order) and the notes for the user."""
    notes, order = list(raw.get("notes", [])), list(raw["static_order"])
    signals = np.asarray(raw["signals"])
    _check(signals.dtype.kind in "iuf" and signals.ndim == 2 and signals.shape[0] > 0,
           f"'{path}': signals must be a non-empty numeric array [N, {SEQUENCE_LENGTH}], "
           f"got shape {signals.shape} of {signals.dtype}")
    n, length = signals.shape
    rate = facts.sample_rate(raw, cfg, path, length)
    cfg.sample_rate_hz = rate  # the file's fact: a default gives way
    signals32 = _float32(signals)  # checked after the cast: 1e39 is finite in float64, inf in float32
    _check_finite_rows(~np.isfinite(signals32).all(axis=1), f"'{path}': signals contain NaN or Inf in",
                       "remove or repair those recordings (values beyond float32's ±3.4e38 count as Inf)")
    z_scored = looks_z_scored(signals)
    signals32, model_rate, start_ms = to_model_length(signals32 * np.float32(cfg.signal_scale), rate, cfg, path, notes)
    if not z_scored:
        checks.check_unit(signals32, path)
    _check_finite_rows(np.abs(signals32).max(axis=1) > MAX_SIGNAL_UV,
                       f"'{path}': signals exceed ±{MAX_SIGNAL_UV:g} µV (a scalp ABR is a few µV) in",
                       "check that they are in µV (e.g. divide nV by 1000) or drop those recordings")
    static, order, units, label_names, label_values = _static(raw, order, n, path, notes)
    optional = {k: np.asarray(raw.get(k, np.full(n, np.nan)), dtype=np.float64) for k in OPTIONAL}
    patient_id = np.asarray(raw["patient_id"])
    extra = {k: np.asarray(raw[k]) for k in ("response_present", "target") if raw.get(k) is not None}
    for name, arr in {"patient_id": patient_id, **optional, **extra}.items():
        rows = arr.shape[0] if arr.ndim else 0
        _check(rows == n, f"'{path}': '{name}' has {rows} rows but signals has {n}; each needs one row per recording")
    latency, amplitude = _marks(optional, path)
    unit = Z_SCORE if z_scored else MICROVOLT
    if unit == Z_SCORE:
        notes.append("signals are z-scored per recording (each has mean 0 and SD 1), so their µV amplitudes "
                     "cannot be recovered: metrics, axes and figures are in z units, and amplitudes marked in µV "
                     "are not compared with them")
        amplitude = np.full(n, np.nan)
    present, truth = _truth(raw, latency, notes, path)
    arrays = ABRArrays(
        signals=signals32, static=static, patient_id=_patient_ids(patient_id, path),
        v_latency_ms=latency.astype(np.float32), v_amplitude_uv=amplitude.astype(np.float32),
        response_present=present, target=extra.get("target"), class_names=raw.get("class_names"),
        signal_unit=unit, truth=truth, labels=label_values, sample_rate_hz=model_rate, start_ms=start_ms,
    )
    arrays = _dropped(arrays, cfg, notes)
    static, label_values, conditions, constants = facts.declare(arrays.static, order, units, label_names,
                                                                arrays.labels, notes)
    return replace(arrays, static=static, labels=label_values, conditions=conditions, constants=constants,
                   file_facts={"sample_rate_hz": rate, "static_order": list(order)}), notes


def _static(raw: Raw, order: list[str], n: int, path: Path,
            notes: list[str]) -> tuple[np.ndarray, list[str], list[str], list[str], np.ndarray | None]:
    """(static float32, its names and units, label names, labels): checked finite and in range."""
    static = np.asarray(raw["static"])
    _check(static.dtype.kind in "iuf" and static.ndim == 2,
           f"'{path}': static must be a numeric array [N, {len(order)}], got shape {static.shape} of {static.dtype}")
    clinic = sorted(order) == sorted(STATIC_NAMES)
    needs = f"abr-tune needs 4, in data.static_order {order}" if len(order) == len(STATIC_NAMES) else \
        f"its static_order names {len(order)}: {order}"
    _check(static.shape[1] == len(order), f"'{path}': static has {static.shape[1]} columns; {needs}")
    rows = static.shape[0] if static.ndim else 0
    _check(rows == n, f"'{path}': 'static' has {rows} rows but signals has {n}; each needs one row per recording")
    units = facts.static_units(raw, order, path)
    static32 = _float32(static)
    finite = np.isfinite(static32)
    columns = ", ".join(order[j] for j in np.flatnonzero(~finite.all(axis=0)))
    _check_finite_rows(~finite.all(axis=1), f"'{path}': static values ({columns}) are NaN or Inf in",
                       "fill them in or drop those rows")
    if clinic:  # the clinic's four in their own order, whatever the file's
        cols = [order.index(name) for name in STATIC_NAMES]
        static32, order, units = static32[:, cols], list(STATIC_NAMES), [units[j] for j in cols]
    facts.check_ranges(static32, order, units, path, notes, _check_finite_rows)
    label_names, label_values = facts.labels(raw, n, path)
    return static32, order, units, label_names, label_values


def _dropped(arrays: ABRArrays, cfg: DataConfig, notes: list[str]) -> ABRArrays:
    """Without flat records and (with data.artifact_reject) artifacts, each said with its rows."""
    flat = checks.flat_rows(arrays.signals)
    if flat.any():
        notes.append(f"dropped {checks.named_rows(np.flatnonzero(flat))}: constant or all-zero signals")
    labels = arrays.labels if arrays.labels is not None else np.empty((len(arrays), 0), dtype=str)
    groups = np.array([row.tobytes().hex() + "|" + "|".join(lab) for row, lab in zip(arrays.static, labels,
                                                                                    strict=True)])
    keep = ~flat
    artifact, reference = checks.artifact_rows(arrays.signals[keep], groups[keep], cfg.artifact_reject)
    if artifact.any():
        rows = np.flatnonzero(keep)[artifact]
        ptp = np.ptp(arrays.signals[rows], axis=1)
        notes.append(f"dropped {checks.named_rows(rows)} as artifacts: peak-to-peak {ptp.max():.3g} µV at most, more "
                     f"than data.artifact_reject {cfg.artifact_reject:g} x the median of their condition (e.g. "
                     f"{reference[artifact][0]:.3g} µV); data.artifact_reject: 0 keeps them")
        keep[rows] = False
    if not keep.any():
        raise UserError("every recording was dropped (constant signals or artifacts); check the file's signals")
    return arrays if keep.all() else arrays.subset(np.flatnonzero(keep))


def looks_z_scored(signals: np.ndarray) -> bool:
    """Whether (almost) every recording that varies has mean 0 and SD 1 (population SD, as numpy computes)."""
    x = np.asarray(signals, dtype=np.float64)
    mean, sd = x.mean(axis=1), x.std(axis=1)
    varying = sd > 1e-6
    if not varying.any():
        return False
    fits = (np.abs(mean) < Z_TOLERANCE) & (np.abs(sd - 1.0) < Z_TOLERANCE)
    return bool(fits[varying].mean() >= Z_SHARE)


def _marks(optional: dict[str, np.ndarray], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Wave V latency (ms) and amplitude marks: NaN where not marked; inf or impossible latencies refused."""
    latency, amplitude = optional["v_latency_ms"], optional["v_amplitude_uv"]
    for name, values in optional.items():
        _check_finite_rows(np.isinf(_float32(values)), f"'{path}': {name} is infinite in",
                           "leave it empty (NaN) where there is no mark")
    _check_finite_rows((latency < 0) | (latency > MAX_LATENCY_MS),
                       f"'{path}': v_latency_ms must lie in [0, {MAX_LATENCY_MS:g}] ms in", "fix those marks")
    return latency, amplitude


def _truth(raw: Raw, latency: np.ndarray, notes: list[str], path: Path) -> tuple[np.ndarray | None, str]:
    """Response presence from the file's marks (a row without a wave V mark counts as no response), if any."""
    if raw.get("response_present") is not None:
        marked = np.asarray(raw["response_present"], dtype=np.float64)
        _check_finite_rows(~np.isin(marked, (0.0, 1.0)), f"'{path}': response_present is neither 1 (a response) nor "
                           "0 (none) in", "mark every row 1 or 0")
        present = marked.astype(bool)
    elif "v_latency_ms" in raw:
        present = np.isfinite(latency)
    else:
        return None, TRUTH_DETECTOR
    notes.append(f"response presence and wave V latency truth come from the file's marks: {int(present.sum())} of "
                 f"{present.size} recordings have a wave V, the other {int((~present).sum())} count as no response")
    return present, TRUTH_MARKS


def _float32(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(values).astype(np.float32)


def _patient_ids(ids: np.ndarray, path: Path) -> np.ndarray:
    _check(ids.ndim == 1, f"'{path}': patient_id must be one value per recording, got shape {ids.shape}")
    missing = ~np.isfinite(ids) if ids.dtype.kind == "f" else \
        np.array([i is None or str(i).strip() in ("", "nan", "None") for i in ids.tolist()], dtype=bool)
    _check_finite_rows(missing, f"'{path}': patient_id is missing in", "give every recording its patient")
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
