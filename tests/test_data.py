"""Data: simulator physiology, file readers and their errors, patient split, normaliser."""

from __future__ import annotations

import csv
import io
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib import format as npy_format

from abr_tune.config import STATIC_NAMES, DataConfig
from abr_tune.data import ABRArrays, Normaliser, load_arrays, prepare_splits, simulate, split_by_patient
from abr_tune.data.synthetic import wave_latencies_ms, wave_v_amplitude_uv, wave_v_latency_ms
from abr_tune.errors import UserError

ADULT, NEONATE, REF_RATE = 30.0, 0.0, 11.1


@pytest.fixture(scope="module")
def sim() -> ABRArrays:
    return simulate(400, 10, seed=5)


# ---------------------------------------------------------------- simulator: published facts

def test_adult_80db_latencies_match_norms():
    lat = wave_latencies_ms(80.0, ADULT, REF_RATE, 0.0)  # waves I..V
    np.testing.assert_allclose(lat[[0, 2, 4]], [1.66, 3.82, 5.75], atol=0.02)


def test_wave_v_latency_intensity_slope_and_elberling_differences():
    intensity = np.arange(30.0, 81.0, 5.0)
    slope = np.polyfit(intensity, wave_v_latency_ms(intensity, ADULT, REF_RATE, 0.0), 1)[0]
    assert -0.06 <= slope <= -0.03, slope  # ~0.03–0.05 ms per dB, later as intensity falls
    v60, v40, v20 = wave_v_latency_ms(np.array([60.0, 40.0, 20.0]), ADULT, REF_RATE, 0.0)
    # Elberling et al. 2010 level steps: +0.71 ms (60→40 dB), +1.01 ms (40→20 dB).
    assert v40 - v60 == pytest.approx(0.71, abs=0.1)
    assert v20 - v40 == pytest.approx(1.01, abs=0.1)


def test_latency_steeper_near_threshold():
    near = wave_v_latency_ms(40.0, ADULT, REF_RATE, 40.0) - wave_v_latency_ms(50.0, ADULT, REF_RATE, 40.0)
    far = wave_v_latency_ms(40.0, ADULT, REF_RATE, 0.0) - wave_v_latency_ms(50.0, ADULT, REF_RATE, 0.0)
    assert near > far + 0.1


def test_simulated_adult_latencies_follow_the_curve(sim):
    intensity = sim.static[:, 1]
    adult = (sim.static[:, 0] > 18) & np.isfinite(sim.v_latency_ms) & (intensity >= 30) & (intensity <= 80)
    slope = np.polyfit(intensity[adult], sim.v_latency_ms[adult], 1)[0]
    assert -0.07 <= slope <= -0.03, slope  # includes near-threshold steepening of real subjects


def test_infants_later_and_mature_by_18_months():
    def i_to_v(age):
        lat = wave_latencies_ms(80.0, age, REF_RATE, 0.0)
        return lat[4] - lat[0]

    assert i_to_v(NEONATE) == pytest.approx(5.0, abs=0.15)  # ~5 ms in neonates
    assert i_to_v(ADULT) == pytest.approx(4.09, abs=0.05)  # ~4 ms in adults
    assert i_to_v(1.5) - i_to_v(ADULT) < 0.05  # mature by ~18 months
    assert wave_v_latency_ms(60.0, NEONATE, REF_RATE, 0.0) > wave_v_latency_ms(60.0, ADULT, REF_RATE, 0.0) + 0.9


def test_simulated_infants_later_than_adults(sim):
    loud = np.isfinite(sim.v_latency_ms) & (sim.static[:, 1] >= 60)
    infants, adults = loud & (sim.static[:, 0] < 0.25), loud & (sim.static[:, 0] > 18)
    assert np.median(sim.v_latency_ms[infants]) > np.median(sim.v_latency_ms[adults]) + 0.7


def test_faster_rate_delays_and_shrinks_wave_v():
    delay = wave_v_latency_ms(70.0, ADULT, 49.1, 0.0) - wave_v_latency_ms(70.0, ADULT, 11.1, 0.0)
    assert 0.15 <= delay <= 0.25  # 0.4–0.5 ms per 90 clicks/s, scaled to 38 clicks/s
    assert wave_v_amplitude_uv(70.0, 49.1, 0.0) < wave_v_amplitude_uv(70.0, 11.1, 0.0)


def test_wave_v_amplitudes_near_elberling():
    amp = wave_v_amplitude_uv(np.array([60.0, 40.0, 20.0]), REF_RATE, 0.0)
    np.testing.assert_allclose(amp, [0.407, 0.368, 0.256], atol=0.04)  # Elberling et al. 2010, µV


def test_no_response_below_threshold(sim):
    absent = ~sim.response_present
    assert 0.1 < absent.mean() < 0.5
    assert np.isnan(sim.v_latency_ms[absent]).all() and np.isnan(sim.v_amplitude_uv[absent]).all()
    np.testing.assert_allclose(sim.static[absent, 3], 1.0, atol=1e-6)  # FMP: noise only scores 1
    assert wave_v_amplitude_uv(20.0, REF_RATE, 30.0) == 0.0


def test_residual_noise_rms_and_colour(sim):
    noise = sim.signals[~sim.response_present].astype(np.float64)  # absent: noise only
    rms = np.sqrt((noise**2).mean(axis=1))
    assert rms.min() >= 0.0199 and rms.max() <= 0.0801  # 20–80 nV after averaging
    lag1 = (noise[:, 1:] * noise[:, :-1]).mean() / (noise**2).mean()
    assert lag1 > 0.5  # coloured (EEG-like), not white


def test_fmp_large_for_strong_responses(sim):
    strong = sim.response_present & (sim.v_amplitude_uv > 0.3)
    fmp = sim.static[:, 3]
    assert np.median(fmp[strong]) > 5.0
    assert np.percentile(fmp, 99.5) > 25.0  # heavy tail
    assert 0.2 < np.median(sim.v_amplitude_uv[sim.response_present & (sim.static[:, 1] >= 60)]) < 0.5


def test_simulated_ranges_and_layout(sim):
    age, intensity, rate, _ = sim.static.T
    assert sim.signals.shape == (4000, 200) and sim.signals.dtype == np.float32
    assert sim.static.shape == (4000, 4) and sim.static.dtype == np.float32
    assert (age < 3).mean() > 0.6 and age.max() <= 75
    assert intensity.min() >= 0 and intensity.max() <= 100
    assert rate.min() >= 11.1 and rate.max() <= 49.1
    per_subject = [np.unique(intensity[sim.patient_id == p]).size for p in range(5)]
    assert min(per_subject) == 10  # an intensity series: distinct levels per subject
    # The noise-free response: what the recording holds besides residual noise, zero below threshold.
    assert sim.clean_uv.shape == (4000, 200) and sim.clean_uv.dtype == np.float32
    assert np.all(sim.clean_uv[~sim.response_present] == 0)
    residual = (sim.signals - sim.clean_uv).std(axis=1)
    assert 0.015 < residual.min() and residual.max() < 0.1  # the 20-80 nV residual noise
    sub = sim.subset(np.arange(3, 9))
    np.testing.assert_array_equal(sub.clean_uv, sim.clean_uv[3:9])


def test_deterministic_per_seed():
    a, b, c = simulate(12, 4, seed=7), simulate(12, 4, seed=7), simulate(12, 4, seed=8)
    for name in ("signals", "static", "patient_id", "v_latency_ms", "v_amplitude_uv", "response_present", "clean_uv"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.signals, c.signals)


def test_generation_time_50k(capsys):
    start = time.perf_counter()
    arrays = simulate(5000, 10, seed=0)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nsimulate: {len(arrays)} recordings in {elapsed:.2f} s")


def test_load_arrays_synthetic_matches_simulate():
    cfg = DataConfig()
    cfg.synthetic.n_subjects, cfg.synthetic.recordings_per_subject = 6, 3
    np.testing.assert_array_equal(load_arrays(cfg).signals, simulate(6, 3, cfg.synthetic.seed).signals)


# ---------------------------------------------------------------- readers

@pytest.fixture(scope="module")
def small() -> ABRArrays:
    return simulate(6, 3, seed=1)


def _file_cfg(path: Path, **kwargs) -> DataConfig:
    return DataConfig(source="file", path=str(path), **kwargs)


def _save_npz(path: Path, arrays: ABRArrays, **overrides) -> Path:
    content = {"signals": arrays.signals, "static": arrays.static, "patient_id": arrays.patient_id,
               "v_latency_ms": arrays.v_latency_ms, "v_amplitude_uv": arrays.v_amplitude_uv}
    content.update(overrides)
    np.savez(path, **{k: v for k, v in content.items() if v is not None})
    return path


def _save_csv(path: Path, arrays: ABRArrays, order=STATIC_NAMES, sample_count: int = 200) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", *order, *(f"s{k}" for k in range(sample_count)), "v_latency_ms"])
        cols = [STATIC_NAMES.index(name) for name in order]
        for i in range(len(arrays)):
            lat = "" if np.isnan(arrays.v_latency_ms[i]) else repr(float(arrays.v_latency_ms[i]))
            writer.writerow([f"P{arrays.patient_id[i]}", *map(repr, arrays.static[i, cols].tolist()),
                             *map(repr, np.resize(arrays.signals[i], sample_count).tolist()), lat])
    return path


def _assert_same(loaded: ABRArrays, arrays: ABRArrays) -> None:
    np.testing.assert_array_equal(loaded.signals, arrays.signals)
    np.testing.assert_array_equal(loaded.static, arrays.static)
    np.testing.assert_array_equal(loaded.v_latency_ms, arrays.v_latency_ms)
    # The file marks wave V, so its marks are the truth: a row without a latency counts as no response.
    np.testing.assert_array_equal(loaded.response_present, np.isfinite(arrays.v_latency_ms))
    assert loaded.truth == "marks" and loaded.signal_unit == "µV"


def test_npz_round_trip(tmp_path, small):
    loaded = load_arrays(_file_cfg(_save_npz(tmp_path / "d.npz", small)))
    _assert_same(loaded, small)
    np.testing.assert_array_equal(loaded.patient_id, small.patient_id)
    np.testing.assert_array_equal(loaded.v_amplitude_uv, small.v_amplitude_uv)


def test_npz_static_order_is_reordered(tmp_path, small):
    order = ["intensity", "fmp", "age", "rate"]
    path = _save_npz(tmp_path / "d.npz", small, static=small.static[:, [STATIC_NAMES.index(n) for n in order]],
                     v_latency_ms=None, v_amplitude_uv=None)
    loaded = load_arrays(_file_cfg(path, static_order=order))
    np.testing.assert_array_equal(loaded.static, small.static)
    assert np.isnan(loaded.v_latency_ms).all()  # optional arrays default to "not marked"


def test_csv_round_trip_with_string_ids_and_reordered_columns(tmp_path, small):
    order = ["rate", "age", "fmp", "intensity"]
    loaded = load_arrays(_file_cfg(_save_csv(tmp_path / "d.csv", small, order), static_order=order))
    _assert_same(loaded, small)
    assert loaded.patient_id[0] == f"P{small.patient_id[0]}"
    assert np.isnan(loaded.v_amplitude_uv).all()


def _original_pickle(path: Path, arrays: ABRArrays) -> Path:
    records = [{"patient_id": int(arrays.patient_id[i]), "static_params": arrays.static[i], "signal": arrays.signals[i],
                "v_peak": np.array([arrays.v_latency_ms[i], arrays.v_amplitude_uv[i]]),
                "v_peak_mask": np.isfinite([arrays.v_latency_ms[i], arrays.v_amplitude_uv[i]])}
               for i in range(len(arrays))]
    with path.open("wb") as f:
        pickle.dump({"data": records, "meta": {"source": "original pipeline"}}, f)
    return path


def test_pickle_with_opt_in_reads_original_layout(tmp_path, small):
    loaded = load_arrays(_file_cfg(_original_pickle(tmp_path / "d.pkl", small), allow_pickle=True))
    _assert_same(loaded, small)
    np.testing.assert_array_equal(loaded.v_amplitude_uv, small.v_amplitude_uv)


def _bad_npz(**overrides):
    def write(path: Path, arrays: ABRArrays) -> Path:
        values = {k: (v(arrays) if callable(v) else v) for k, v in overrides.items()}
        return _save_npz(path / "bad.npz", arrays, **values)

    return write


def _with_nan(row: int, value: float):
    def signals(arrays):
        out = arrays.signals.copy()
        out[row, 17] = value
        return out

    return signals


def _static_nan(arrays):
    out = arrays.static.copy()
    out[4, 2] = np.nan
    return out


def _write_text(name: str, text: str):
    def write(path: Path, arrays: ABRArrays) -> Path:
        (path / name).write_text(text)
        return path / name

    return write


def _set_cell(key: str, row: int, col: int, value: float):
    """An array of the file with one cell replaced, stored as float64 (1e39 is finite there, not in float32)."""
    def change(arrays):
        out = getattr(arrays, key).astype(np.float64)
        out[row, col] = value
        return out

    return change


def _huge_header(path: Path, arrays: ABRArrays) -> Path:
    """An .npz whose 'signals' header claims 10^9 recordings while the member holds a few bytes."""
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 200)})
    with zipfile.ZipFile(path / "huge.npz", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("signals.npy", header.getvalue() + b"\0" * 64)
        for key in ("static", "patient_id"):
            buffer = io.BytesIO()
            np.save(buffer, getattr(arrays, key))
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path / "huge.npz"


BAD_INPUTS = {  # case: (writer, fragment the one-line message must contain)
    "signal beyond float32": (_bad_npz(signals=_set_cell("signals", 2, 50, 1e39)),
                              "signals contain NaN or Inf in 1 recording(s) (0-based rows 2)"),
    "static beyond float32": (_bad_npz(static=_set_cell("static", 1, 3, 1e39)),
                              "static values (fmp) are NaN or Inf in 1 recording(s) (0-based rows 1)"),
    "signal not in µV": (_bad_npz(signals=_set_cell("signals", 7, 9, 2e4)), "exceed ±10000 µV"),
    "negative age": (_bad_npz(static=_set_cell("static", 4, 0, -0.4)),
                     "static 'age' must lie in [0, 120] years (negative values suggest standardised"),
    "intensity beyond 140 dB": (_bad_npz(static=_set_cell("static", 0, 1, 400.0)),
                                "static 'intensity' must lie in [-20, 140] dB nHL, e.g. not 400, in 1 recording(s) "
                                "(0-based rows 0)"),
    "rate 0": (_bad_npz(static=_set_cell("static", 3, 2, 0.0)), "static 'rate' must lie in (0, 500] clicks/s"),
    "negative fmp": (_bad_npz(static=_set_cell("static", 5, 3, -1.0)), "static 'fmp' must lie in [0, 100000]"),
    "header claims 1.6 TB": (_huge_header, "'signals' claims an array of shape (1000000000, 200) (float64, 1.6 TB)"),
    "infinite latency mark": (_bad_npz(v_latency_ms=lambda a: np.where(np.arange(len(a)) == 2, np.inf, 6.0)),
                              "v_latency_ms is infinite in 1 recording(s) (0-based rows 2)"),
    "T=199": (_bad_npz(signals=lambda a: a.signals[:, :199]), "signals have 199 samples per recording"),
    "T=201": (_bad_npz(signals=lambda a: np.pad(a.signals, ((0, 0), (0, 1)))), "201 samples"),
    "NaN row": (_bad_npz(signals=_with_nan(3, np.nan)), "NaN or Inf in 1 recording(s) (0-based rows 3)"),
    "Inf row": (_bad_npz(signals=_with_nan(5, np.inf)), "rows 5"),
    "3 static columns": (_bad_npz(static=lambda a: a.static[:, :3]), "static has 3 columns; abr-tune needs 4"),
    "mismatched N": (_bad_npz(patient_id=lambda a: a.patient_id[:-2]), "'patient_id' has 16 rows but signals has 18"),
    "NaN static": (_bad_npz(static=_static_nan), "static values (rate) are NaN or Inf in 1 recording(s) (0-based"),
    "missing key": (_bad_npz(static=None), "has no 'static' array"),
    "NaN patient ids": (_bad_npz(patient_id=lambda a: np.where(np.isin(np.arange(len(a)), [1, 4]), np.nan,
                                                                 a.patient_id.astype(float))),
                        "patient_id is missing in 2 recording(s) (0-based rows 1, 4)"),
    "blank patient ids": (_bad_npz(patient_id=lambda a: np.where(np.arange(len(a)) == 2, "", a.patient_id.astype(str))),
                          "patient_id is missing in 1 recording(s) (0-based rows 2)"),
    "object ids": (_bad_npz(patient_id=lambda a: np.array([{"id": 1}] * len(a), dtype=object)), "Python objects"),
    "corrupt npz": (_write_text("bad.npz", "not a zip"), "not a valid .npz"),
    "wrong extension": (_write_text("bad.txt", "x"), "supported: .npz, .csv"),
    "missing file": (lambda path, arrays: path / "nope.npz", "data file not found"),
    "pickle without opt-in": (lambda path, arrays: _original_pickle(path / "d.pkl", arrays),
                              'add --override "data.allow_pickle: true"'),
    "csv T=199": (lambda path, arrays: _save_csv(path / "d.csv", arrays, sample_count=199), "199 samples"),
    "csv not a number": (_write_text("bad.csv", "patient_id,age,intensity,rate,fmp,s0\n1,x,2,3,4,5\n"),
                         "row 0, column 'age' is not a number"),
    "csv missing column": (_write_text("bad.csv", "patient_id,age,intensity,fmp,s0\n1,1,2,4,5\n"),
                           "has no column 'rate'"),
    "corrupt pickle": (_write_text("bad.pkl", "garbage"), "cannot read pickle"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_one_line_user_error(case, tmp_path, small):
    write, fragment = BAD_INPUTS[case]
    path = write(tmp_path, small)
    allow = case == "corrupt pickle"
    with pytest.raises(UserError) as info:
        load_arrays(_file_cfg(path, allow_pickle=allow))
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


def test_a_huge_header_is_refused_before_any_allocation(tmp_path, small):
    started = time.perf_counter()
    with pytest.raises(UserError, match="claims an array"):
        load_arrays(_file_cfg(_huge_header(tmp_path, small)))
    assert time.perf_counter() - started < 2.0


def _lab_csv(path: Path, arrays: ABRArrays, headers: list[str]) -> Path:
    """A CSV as a lab's export writes it: patient, the four conditions, wave V latency, class, samples 1..200."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*headers, "Hear_Loss", *(str(k) for k in range(1, 201))])
        for i in range(len(arrays)):
            lat = "" if np.isnan(arrays.v_latency_ms[i]) else repr(float(arrays.v_latency_ms[i]))
            writer.writerow([arrays.patient_id[i], *map(repr, arrays.static[i].tolist()), lat, "NORMAL",
                             *map(repr, arrays.signals[i].tolist())])
    return path


@pytest.mark.parametrize("headers", [["Patient_ID", "Age", "Intensity", "Stimulus Rate", "FMP", "V Latancy"],
                                     ["patient id", "AGE", " intensity", "stimulus_rate", "Fmp", "v latency ms"]])
def test_csv_with_the_original_column_names(tmp_path, small, headers, capsys):
    loaded = load_arrays(_file_cfg(_lab_csv(tmp_path / "lab.csv", small, headers)))
    _assert_same(loaded, small)
    assert "ignored columns that are neither samples nor read: Hear_Loss" in capsys.readouterr().err


def test_csv_columns_mapped_with_data_columns(tmp_path, small):
    headers = ["Hasta", "Patient Age", "Level dB", "Rate /s", "FMP", "Wave V (ms)"]
    path = _lab_csv(tmp_path / "mine.csv", small, headers)
    with pytest.raises(UserError, match="has no column 'patient_id', 'age', 'intensity', 'rate' .*data.columns: {"):
        load_arrays(_file_cfg(path))
    columns = {"patient_id": "Hasta", "age": "Patient Age", "intensity": "Level dB", "rate": "Rate /s",
               "v_latency_ms": "Wave V (ms)"}
    _assert_same(load_arrays(_file_cfg(path, columns=columns)), small)
    with pytest.raises(UserError, match="has no column 'Years'"):
        load_arrays(_file_cfg(path, columns={**columns, "age": "Years"}))


def test_data_columns_with_an_npz_is_refused(tmp_path, small):
    with pytest.raises(UserError, match="data.columns names CSV headers"):
        load_arrays(_file_cfg(_save_npz(tmp_path / "d.npz", small), columns={"age": "Age"}))


def test_z_scored_npz_is_detected_and_its_amplitude_marks_dropped(tmp_path, small, capsys):
    z = (small.signals - small.signals.mean(axis=1, keepdims=True)) / small.signals.std(axis=1, keepdims=True)
    loaded = load_arrays(_file_cfg(_save_npz(tmp_path / "z.npz", small, signals=z)))
    assert loaded.signal_unit == "z" and np.isnan(loaded.v_amplitude_uv).all()
    assert "µV amplitudes cannot be recovered" in capsys.readouterr().err
    assert load_arrays(_file_cfg(_save_npz(tmp_path / "uv.npz", small))).signal_unit == "µV"


def test_response_present_column_marks_presence_without_a_latency(tmp_path, small):
    present = np.isfinite(small.v_latency_ms) | (np.arange(len(small)) == 0)
    path = _save_npz(tmp_path / "d.npz", small, response_present=present.astype(np.int8))
    loaded = load_arrays(_file_cfg(path))
    np.testing.assert_array_equal(loaded.response_present, present)
    with pytest.raises(UserError, match="response_present is neither 1"):
        load_arrays(_file_cfg(_save_npz(tmp_path / "bad.npz", small, response_present=np.full(len(small), 2))))


# ---------------------------------------------------------------- split

def test_split_is_patient_disjoint_complete_and_seeded(sim):
    train, val, test = split_by_patient(sim.patient_id, [0.7, 0.15, 0.15], seed=3)
    groups = [set(sim.patient_id[idx]) for idx in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(len(sim)))
    assert [len(g) for g in groups] == [280, 60, 60]
    again = split_by_patient(sim.patient_id, [0.7, 0.15, 0.15], seed=3)
    other = split_by_patient(sim.patient_id, [0.7, 0.15, 0.15], seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test), strict=True))
    assert not np.array_equal(other[0], train)


def test_split_row_order_does_not_matter():
    ids = np.repeat(np.array(["a", "b", "c", "d", "e"]), 2)
    perm = np.random.default_rng(0).permutation(len(ids))
    direct = [set(ids[i]) for i in split_by_patient(ids, [0.6, 0.2, 0.2], seed=1)]
    shuffled = [set(ids[perm][i]) for i in split_by_patient(ids[perm], [0.6, 0.2, 0.2], seed=1)]
    assert direct == shuffled


def test_split_small_patient_counts():
    train, val, test = split_by_patient(np.array([1, 1, 2, 3]), [0.8, 0.1, 0.1], seed=0)
    assert min(len(train), len(val), len(test)) >= 1
    assert len(split_by_patient(np.array([1, 2]), [0.5, 0.5, 0.0], seed=0)[2]) == 0
    with pytest.raises(UserError, match="2 distinct patient_id"):
        split_by_patient(np.array([1, 2, 2]), [0.7, 0.15, 0.15], seed=0)


# ---------------------------------------------------------------- normaliser

def _static_examples() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.uniform(0, 75, 64), rng.uniform(0, 100, 64), rng.uniform(11.1, 49.1, 64),
                     np.r_[0.0, 1515.0, rng.lognormal(1, 1.5, 62)]], axis=1)


def test_normaliser_inverse_is_exact():
    static = _static_examples()
    signals = np.random.default_rng(1).normal(0.05, 0.2, (64, 200))
    norm = Normaliser.fit(signals, static)
    np.testing.assert_allclose(norm.decode_signals(norm.encode_signals(signals)), signals, atol=1e-5)
    np.testing.assert_allclose(norm.decode_static(norm.encode_static(static)), static, atol=1e-5)
    encoded = norm.encode_static(static)
    np.testing.assert_allclose(encoded.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(encoded.std(0), 1, atol=1e-9)
    raw_z = (static[:, 3] - static[:, 3].mean()) / static[:, 3].std()
    assert encoded[:, 3].max() < 0.6 * raw_z.max()  # FMP's tail compressed by log1p before standardising
    f32 = static.astype(np.float32)
    assert norm.encode_static(f32).dtype == np.float32
    np.testing.assert_allclose(norm.decode_static(norm.encode_static(f32)), f32, rtol=1e-5, atol=1e-5)


def test_normaliser_spreads_infant_ages(sim):
    # The cohort is mostly infants: 0-2 years must span a usable part of the encoded age axis,
    # not the sliver linear scaling over 0-75 years leaves them.
    norm = Normaliser.fit(sim.signals, sim.static)
    age = np.array([[0.0, 60, 21.1, 2], [2.0, 60, 21.1, 2], [20.0, 60, 21.1, 2], [75.0, 60, 21.1, 2]])
    z = norm.encode_static(age)[:, 0]
    assert z[1] - z[0] > 0.3 * (z[3] - z[1])  # log1p: 0.34; linear scaling: 2 / 73 = 0.027
    assert norm.log1p_static == ("age", "fmp")


def test_normaliser_of_an_older_checkpoint_keeps_its_encoding():
    # Checkpoints written before age was compressed hold no `log1p_static`: only FMP was.
    static = _static_examples()
    old = {"signal_mean": 0.0, "signal_std": 1.0, "static_mean": [10.0, 50.0, 30.0, 1.5],
           "static_std": [20.0, 25.0, 10.0, 1.0], "static_names": ["age", "intensity", "rate", "fmp"]}
    norm = Normaliser.from_state_dict(old)
    np.testing.assert_allclose(norm.encode_static(static)[:, 0], (static[:, 0] - 10.0) / 20.0)
    np.testing.assert_allclose(norm.encode_static(static)[:, 3], np.log1p(static[:, 3]) - 1.5)
    np.testing.assert_allclose(norm.decode_static(norm.encode_static(static)), static, atol=1e-9)


def test_normaliser_torch_matches_numpy():
    static = _static_examples()
    norm = Normaliser.fit(np.zeros((2, 200)) + [[0.0], [1.0]], static)
    encoded = norm.encode_static(torch.as_tensor(static))
    np.testing.assert_allclose(encoded.numpy(), norm.encode_static(static), atol=1e-12)
    np.testing.assert_allclose(norm.decode_static(encoded).numpy(), static, atol=1e-5)
    x = torch.randn(3, 200, dtype=torch.float32)
    torch.testing.assert_close(norm.decode_signals(norm.encode_signals(x)), x, atol=1e-5, rtol=0)


def test_normaliser_state_dict_is_plain_and_loads_weights_only(tmp_path):
    norm = Normaliser.fit(np.ones((4, 200)), np.ones((4, 4)))  # constant columns: std floored, no inf
    state = norm.state_dict()

    def plain(value) -> bool:
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return type(value) in (float, int, str)

    assert all(plain(v) for v in state.values()), state
    torch.save({"normaliser": state}, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)["normaliser"]
    assert Normaliser.from_state_dict(loaded) == norm
    assert np.isfinite(norm.encode_static(np.zeros((1, 4)))).all()


def test_prepare_splits_fits_on_train(sim):
    splits = prepare_splits(DataConfig(split_seed=9), sim)
    ids = [set(part.patient_id) for part in (splits.train, splits.val, splits.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(sim)
    assert splits.normaliser == Normaliser.fit(splits.train.signals, splits.train.static)
    assert splits.train.response_present is not None
