"""A lab's own recordings file: its sample rate, conditions, units and categories are what training,
sampling and figures use; T = 200 only by data.window or data.resample_hz; wrong units, flat records
and artifacts are caught. The files are small mouse-like click ABRs written here (24,414 Hz, 244
samples, intensity in dB SPL, age in months, a categorical time point)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import assert_user_error, run_cli, tiny_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from abr_tune.checkpoint import load_checkpoint
from abr_tune.config import from_dict, load_config
from abr_tune.data import load_arrays
from abr_tune.errors import UserError
from abr_tune.sample import main as sample_main
from abr_tune.train import main as train_main
from abr_tune.train import train_abr

FS = 24414.0
LATENCIES_MS = (1.4, 2.3, 3.2, 4.1, 5.4)  # mouse click ABR waves I-V


def mouse_like(n_mice: int = 8, levels=(30.0, 50.0, 70.0, 90.0), seed: int = 0, **members) -> dict:
    """The members a converted lab file holds: 2 time points x levels per mouse, 244 samples at 24,414 Hz."""
    rng = np.random.default_rng(seed)
    t_ms = np.arange(244) / FS * 1000
    rows, static, labels, ids = [], [], [], []
    for mouse in range(n_mice):
        age = 2.0 + mouse % 3
        for time_point in ("baseline", "24h"):
            for level in levels:
                gain = 3 * max(level - 20, 0) / 70 * (0.6 if time_point == "24h" else 1.0)
                shift = (90 - level) * 0.01  # later at lower levels
                wave = sum(gain * np.exp(-0.5 * ((t_ms - lat - shift) / 0.15) ** 2) for lat in LATENCIES_MS)
                rows.append(wave + rng.normal(0, 0.05, t_ms.size))
                static.append([level, age])
                labels.append([time_point])
                ids.append(f"M{mouse}")
    content = {"signals": np.array(rows, dtype=np.float32), "sample_rate_hz": np.float64(FS),
               "patient_id": np.array(ids), "static": np.array(static, dtype=np.float32),
               "static_order": np.array(["intensity", "age"]), "static_units": np.array(["dB SPL", "months"]),
               "labels": np.array(labels), "label_order": np.array(["time_point"])}
    content.update(members)
    return {k: v for k, v in content.items() if v is not None}


def write(path: Path, content: dict) -> Path:
    np.savez(path, **content)
    return path


def file_cfg(path: Path, **data):
    return from_dict({"data": {"source": "file", "path": str(path), **data}}).data


# ---------------------------------------------------------------- §3 the file's facts


def test_the_files_rate_conditions_units_and_categories_are_read(tmp_path, capsys):
    cfg = file_cfg(write(tmp_path / "m.npz", mouse_like()), window=0)
    arrays = load_arrays(cfg)
    assert arrays.signals.shape == (64, 200) and arrays.sample_rate_hz == FS and arrays.start_ms == 0
    assert cfg.sample_rate_hz == FS and cfg.static_order == ["intensity", "age"]
    spec = arrays.conditions
    assert spec.names == ("intensity", "age") and spec.units == ("dB SPL", "months")
    assert spec.labels == ("time_point",) and spec.categories == (("24h", "baseline"),)
    assert spec.input_dim == 4 and spec.axis_label("intensity") == "intensity (dB SPL)"
    assert "data.window keeps samples 0-199 of 244 (0-8.15 ms at 24414 Hz)" in capsys.readouterr().err


@pytest.mark.parametrize(("data", "fragment"), [
    ({"window": 0, "sample_rate_hz": 20000}, "was recorded at 24414 Hz (its sample_rate_hz) but data.sample_rate_hz "
                                             "is 20000; remove data.sample_rate_hz"),
    ({"window": 0, "static_order": ["age", "intensity"]},
     "stores its conditions in the order ['intensity', 'age'] (its static_order) but data.static_order is "
     "['age', 'intensity']"),
])
def test_a_set_value_that_disagrees_with_the_file_is_one_error(tmp_path, data, fragment):
    with pytest.raises(UserError, match=None) as info:
        load_arrays(file_cfg(write(tmp_path / "m.npz", mouse_like()), **data))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_cpu_config_takes_the_files_facts(tmp_path):
    from conftest import ROOT

    path = write(tmp_path / "m.npz", mouse_like())
    cfg = load_config(ROOT / "configs" / "cpu.yaml", f"data.source: file, data.path: {path}, data.window: 0")
    arrays = load_arrays(cfg.data)
    assert cfg.data.sample_rate_hz == FS and cfg.data.static_order == ["intensity", "age"]
    assert arrays.conditions.units == ("dB SPL", "months")


def test_a_file_without_a_rate_needs_one_unless_it_has_200_samples(tmp_path):
    path = write(tmp_path / "m.npz", mouse_like(sample_rate_hz=None))
    with pytest.raises(UserError, match="signals have 244 samples per recording and the file has no sample_rate_hz; "
                                        "set data.sample_rate_hz"):
        load_arrays(file_cfg(path, window=0))
    assert load_arrays(file_cfg(path, window=0, sample_rate_hz=FS)).sample_rate_hz == FS


# ---------------------------------------------------------------- §5 T = 200


def test_a_long_record_names_both_ways_forward_and_resampling_keeps_10_ms(tmp_path, capsys):
    path = write(tmp_path / "m.npz", mouse_like())
    with pytest.raises(UserError) as info:
        load_arrays(file_cfg(path))
    assert "244 samples per recording (9.994 ms at 24414 Hz)" in str(info.value)
    assert "set data.window" in str(info.value) and "or data.resample_hz" in str(info.value)
    arrays = load_arrays(file_cfg(path, resample_hz=20000))
    assert arrays.signals.shape == (64, 200) and arrays.sample_rate_hz == 20000
    # wave V keeps its latency through the anti-aliased resampling
    peak = lambda x, fs: np.argmax(x[:, int(4.8e-3 * fs):int(6.2e-3 * fs)].mean(0)) / fs * 1000 + 4.8  # noqa: E731
    raw = np.load(path)["signals"]
    assert peak(arrays.signals, 20000) == pytest.approx(peak(raw, FS), abs=0.06)
    with pytest.raises(UserError, match="too short for a 200-sample window from data.window 2 ms"):
        load_arrays(file_cfg(path, window=2))


# ---------------------------------------------------------------- §6 nothing misread


@pytest.mark.parametrize(("scale", "unit", "fix"), [(1e-6, "V", "1e+06"), (1e-3, "mV", "1000"),
                                                    (1e3, "nV", "0.001")])
def test_signals_in_another_unit_are_refused_naming_it(tmp_path, scale, unit, fix):
    content = mouse_like()
    content["signals"] = content["signals"] * scale
    with pytest.raises(UserError) as info:
        load_arrays(file_cfg(write(tmp_path / "m.npz", content), window=0))
    assert f"they look like {unit}; set data.signal_scale: {fix} to convert them to µV" in str(info.value)
    fixed = load_arrays(file_cfg(tmp_path / "m.npz", window=0, signal_scale=float(fix)))
    assert 0.5 < np.median(np.ptp(fixed.signals, axis=1)) < 10


def test_small_responses_stored_in_nv_are_refused(tmp_path):
    """A median of 0.55 µV (the BioSigRZ development click records') stored in nV is 553: not µV."""
    content = mouse_like()
    content["signals"] = content["signals"] * (553.0 / np.median(np.ptp(content["signals"], axis=1)))
    with pytest.raises(UserError, match="median peak-to-peak is 553, outside an ABR's .* they look like nV"):
        load_arrays(file_cfg(write(tmp_path / "m.npz", content), window=0))


def test_flat_records_and_an_artifact_are_dropped_and_named(tmp_path, capsys):
    content = mouse_like()
    content["signals"][3] = 0.0
    content["signals"][9] = 1.5
    content["signals"][20, 100] += 200.0  # one 200 µV artifact among ~1 µV recordings
    arrays = load_arrays(file_cfg(write(tmp_path / "m.npz", content), window=0))
    err = capsys.readouterr().err
    assert len(arrays) == 61
    assert "dropped 2 recording(s) (0-based rows 3, 9): constant or all-zero signals" in err
    assert "dropped 1 recording(s) (0-based rows 20) as artifacts: peak-to-peak 200 µV" in err
    kept = load_arrays(file_cfg(tmp_path / "m.npz", window=0, artifact_reject=0))
    assert len(kept) == 62


def test_an_artifact_kept_does_not_set_the_scale(tmp_path):
    from abr_tune.data import Conditions, Normaliser

    content, spec = mouse_like(), Conditions(("intensity", "age"), ("dB SPL", "months"))
    clean = Normaliser.fit(content["signals"], content["static"], spec)
    content["signals"][20, 100] += 200.0
    dirty = Normaliser.fit(content["signals"], content["static"], spec)
    assert dirty.signal_std == pytest.approx(clean.signal_std, rel=0.05)


def test_a_constant_condition_is_noticed_and_left_out(tmp_path, capsys):
    content = mouse_like(levels=(70.0,))
    arrays = load_arrays(file_cfg(write(tmp_path / "m.npz", content), window=0))
    assert arrays.conditions.names == ("age",) and arrays.static.shape == (16, 1)
    assert "constant in the data, so left out of the conditioning: intensity = 70 dB SPL" in capsys.readouterr().err


def test_a_condition_outside_its_units_range_is_refused(tmp_path):
    content = mouse_like()
    content["static"][5, 1] = 2000.0  # months
    with pytest.raises(UserError, match=r"static 'age' must lie in \[0, 1440\] months, e.g. not 2000"):
        load_arrays(file_cfg(write(tmp_path / "m.npz", content), window=0))


def _volts(content):
    content["signals"] = content["signals"] * 1e-6
    return content


def _months_2000(content):
    content["static"][5, 1] = 2000.0
    return content


@pytest.mark.parametrize(("change", "override", "fragment"), [
    (None, "", "set data.window"),
    (_volts, "data.window: 0", "they look like V; set data.signal_scale: 1e+06"),
    (None, "data.window: 0, data.sample_rate_hz: 20000", "was recorded at 24414 Hz"),
    (None, "data.window: 0, data.static_order: [age, intensity]", "stores its conditions in the order"),
    (None, "data.window: 0, model.static_dim: 4, data.artifact_reject: 0, data.resample_hz: 9000",
     "signals have 90 samples per recording"),
    (_months_2000, "data.window: 0", "static 'age' must lie in [0, 1440] months"),
    (lambda c: {k: v for k, v in c.items() if k != "sample_rate_hz"}, "data.window: 0",
     "the file has no sample_rate_hz"),
])
def test_each_check_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, change, override, fragment):
    content = mouse_like()
    path = write(tmp_path / "m.npz", change(content) if change else content)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, data={"source": "file", "path": str(path)})))
    with pytest.raises(SystemExit) as info:
        train_main(["--config", str(config), *(["--override", override] if override else [])])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("abr-tune: error: ")]
    assert info.value.code == 2 and len(errors) == 1 and fragment in errors[0], err
    assert "Traceback" not in "".join(err) and not (tmp_path / "runs").exists()


def test_cli_errors_are_one_line_exit_2_before_training(tmp_path, capsys):
    path = write(tmp_path / "m.npz", mouse_like())
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, data={"source": "file", "path": str(path)})))
    with pytest.raises(SystemExit) as info:
        train_main(["--config", str(config)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "set data.window" in err[0]
    assert not (tmp_path / "runs").exists()
    proc = run_cli("abr_tune.train", "--config", str(config), "--override",
                   "data.window: 0, data.sample_rate_hz: 20000")
    assert_user_error(proc, "was recorded at 24414 Hz (its sample_rate_hz) but data.sample_rate_hz is 20000")


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def mouse_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mouse")
    path = write(tmp / "m.npz", mouse_like())
    raw = tiny_config(tmp, data={"source": "file", "path": str(path), "window": 0, "split": [0.5, 0.25, 0.25]},
                      trainer={"max_epochs": 2, "sample_conditions": 8}, loader={"batch_size": 8})
    return tmp, train_abr(raw)


def test_the_run_records_the_files_facts(mouse_run):
    _, summary = mouse_run
    recorded = load_config(Path(summary["run_dir"]) / "config.yaml")
    assert recorded.data.sample_rate_hz == FS and recorded.data.window == 0
    assert recorded.data.static_order == ["intensity", "age"] and recorded.model.static_dim == 4
    state = load_checkpoint(summary["best_checkpoint"])
    conditions = state["normaliser"]["conditions"]
    assert conditions["units"] == ["dB SPL", "months"] and conditions["categories"] == [["24h", "baseline"]]
    acc = EventAccumulator(summary["run_dir"], size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert "samples/waveforms_comparison" in acc.Tags()["images"]


def test_panel_titles_carry_the_files_units(mouse_run):
    from abr_tune.data import load_arrays as load

    tmp, _ = mouse_run
    arrays = load(file_cfg(tmp / "m.npz", window=0))
    assert arrays.titles()[0] == "30 dB SPL · 2 mo\nbaseline"  # short units: a narrow panel


def test_sample_with_conditions_writes_a_file_that_trains_again(mouse_run, capsys):
    tmp, summary = mouse_run
    out = tmp / "gen.npz"
    argv = ["--checkpoint", summary["best_checkpoint"], "--n", "6", "--steps", "2", "--out", str(out)]
    assert sample_main([*argv, "--condition", "intensity=70", "--condition", "age=3",
                        "--condition", "time_point=24h"]) == 0
    data = np.load(out)
    assert data["signals"].shape == (6, 200) and float(data["sample_rate_hz"]) == FS
    assert data["static_units"].tolist() == ["dB SPL", "months"] and data["labels"].tolist() == [["24h"]] * 6
    assert data["patient_id"][0] == "generated-0"
    raw = tiny_config(tmp / "again", data={"source": "file", "path": str(out)}, trainer={"max_epochs": 1},
                      loader={"batch_size": 2})
    again = train_abr(raw)
    assert again["status"] == "completed"
    assert load_config(Path(again["run_dir"]) / "config.yaml").data.sample_rate_hz == FS
    # and evaluate reads it as recordings for the model that generated it (its constant conditions filled in)
    from abr_tune.fidelity.evaluation import EvalOptions, evaluate

    report = evaluate(summary["best_checkpoint"], EvalOptions(split="all", cfg_scales=(1.0,), repeats=2, steps=2,
                                                              data_path=str(out)), verbose=False)
    assert report["n_conditions"] == 6 and report["sample_rate_hz"] == FS


@pytest.mark.parametrize(("conditions", "fragment"), [
    (["intensity=70", "age=3", "time_point=48h"], "time_point '48h' is not a category the model was trained on; "
                                                  "valid: 24h, baseline"),
    (["intensity=70", "age=3"], "no value for time_point: give --condition time_point=VALUE"),
    (["intensity=200", "age=3", "time_point=24h"], "--condition intensity must be a finite number in [-20, 140] "
                                                   "dB SPL, got 200"),
    (["loudness=70"], "the model has no condition 'loudness'; it declares intensity (dB SPL), age (months); "
                      "time_point: 24h, baseline"),
])
def test_sample_conditions_are_checked_against_the_checkpoint(mouse_run, capsys, conditions, fragment):
    _, summary = mouse_run
    argv = ["--checkpoint", summary["best_checkpoint"], "--out", str(Path(summary["run_dir"]) / "x.npz")]
    with pytest.raises(SystemExit) as info:
        sample_main([*argv, *(x for c in conditions for x in ("--condition", c))])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and fragment in err[0], err


def test_evaluate_scores_one_time_point_in_the_files_units(mouse_run, capsys):
    from abr_tune.evaluate import main as evaluate_main

    tmp, summary = mouse_run
    out = tmp / "eval"
    assert evaluate_main(["--checkpoint", summary["best_checkpoint"], "--split", "all", "--condition",
                          "time_point=24h", "--cfg-scale", "1", "--repeats", "2", "--steps", "2",
                          "--out", str(out)]) == 0
    report = (out / "summary.md").read_text()
    assert "Conditions: intensity (dB SPL), age (months); time_point: 24h, baseline. Time axis: 24414 Hz from 0 ms." \
        in report
    metrics = yaml.safe_load((out / "metrics.json").read_text())
    assert metrics["n_conditions"] == 32 and metrics["sample_rate_hz"] == FS
    assert (out / "latency_intensity.png").is_file()
    with pytest.raises(SystemExit):
        evaluate_main(["--checkpoint", summary["best_checkpoint"], "--condition", "time_point=1y", "--out",
                       str(tmp / "eval2")])
    assert "time_point '1y' is not a category the model was trained on; valid: 24h, baseline" in \
        capsys.readouterr().err


def test_the_physiology_measures_see_the_intensity_and_age_in_years(tmp_path):
    arrays = load_arrays(file_cfg(write(tmp_path / "m.npz", mouse_like()), window=0))
    view = arrays.measured().static
    np.testing.assert_array_equal(view[:, 1], arrays.column("intensity"))
    np.testing.assert_allclose(view[:, 0], arrays.column("age") / 12)  # months -> years
    assert (view[:, 2:] == 0).all()  # no rate or Fmp: a constant the latency fit leaves out
