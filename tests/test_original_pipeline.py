"""Users of the original pipeline: its config and its joblib pickle, brought unchanged.

The fixture is written here the way the original preprocessing wrote its file: static parameters
standardised by a fitted sklearn StandardScaler stored beside them, each signal z-scored on its
own, v_peak in ms and µV with its mask, targets from a LabelEncoder.
"""

from __future__ import annotations

import copy
import json
import math

import joblib
import numpy as np
import pytest
import yaml
from conftest import run_cli, tiny_config
from sklearn.preprocessing import LabelEncoder, StandardScaler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from abr_tune.config import DataConfig
from abr_tune.config.original import ALWAYS, NEVER, NO_EFFECT
from abr_tune.data import load_arrays, simulate
from abr_tune.errors import UserError

CLASSES = ["NORMAL", "NÖROPATİ", "SNİK", "TOTAL", "İTİK"]  # the original's Hear_Loss values

# Every key of the original configs/train.yaml with its value there (the sizes are shrunk per test).
ORIGINAL = {
    "seed": 42, "device": "cuda", "log_dir": "runs/abr_transformer", "exp_name": "abr_vpred_base",
    "data": {"train_csv": "data.pkl", "val_csv": "data.pkl", "sequence_length": 200,
             "static_order": ["Age", "Intensity", "Stimulus Rate", "FMP"],
             "train_ratio": 0.7, "val_ratio": 0.15, "test_ratio": 0.15},
    "loader": {"batch_size": 32, "num_workers": 4, "pin_memory": True, "drop_last": True, "prefetch_factor": 2,
               "persistent_workers": False},
    "model": {"input_channels": 1, "static_dim": 4, "sequence_length": 200, "d_model": 256, "n_layers": 6,
              "n_heads": 8, "ff_mult": 4, "dropout": 0.1, "use_timestep_cond": True, "use_static_film": True},
    "diffusion": {"num_train_steps": 1000, "schedule": "cosine", "v_prediction": True, "sample_steps": 60,
                  "ddim_eta": 0.0, "cfg_scale": 1.0},
    "optim": {"lr": 0.0001, "betas": [0.9, 0.99], "weight_decay": 0.00001, "grad_clip": 1.0, "amp": True,
              "ema_decay": 0.999},
    "loss": {"stft_weight": 0.15, "stft": {"n_fft": 64, "hop_length": 16, "win_length": 64, "eps": 0.00000001}},
    "trainer": {"max_epochs": 100, "log_every_steps": 50, "validate_every_epochs": 1, "sample_every_epochs": 2,
                "num_val_plots": 8, "num_sample_plots": 8, "ckpt_dir": "checkpoints/abr_transformer",
                "save_every_epochs": 5, "keep_last_k": 5, "resume": "", "early_stop_patience": 20,
                "early_stop_min_delta": 0.000001},
    "viz": {"plot_spectrogram": True, "plot_audio": False, "audio_sample_rate": 20000, "max_waveform_plots": 8,
            "max_spectrogram_plots": 4, "figsize": [12, 8]},
    "advanced": {"cfg_dropout_prob": 0.1, "log_grad_norm": True, "log_param_norm": True, "grad_norm_clip": 1.0,
                 "lr_scheduler": "cosine", "lr_warmup_steps": 1000, "val_sample_cfg_scales": [1.0, 1.5, 2.0]},
    "logging": {"log_loss_components": True, "log_learning_rate": True, "log_gradient_norm": True,
                "log_parameter_histograms": False, "console_log_level": "INFO", "save_config_with_checkpoint": True,
                "save_model_summary": True},
    "performance": {"gradient_checkpointing": False, "pin_memory": True, "non_blocking": True, "distributed": False,
                    "find_unused_parameters": False},
    "reproducibility": {"deterministic": False, "benchmark": True},
}
NAMED_IN_THE_NOTICE = [*NO_EFFECT, *ALWAYS, *NEVER, "data.val_csv"]


def original_pickle(path, n_subjects: int = 12, per_subject: int = 6, seed: int = 4):
    """The original pipeline's pickle of simulated recordings; returns (path, the raw recordings, targets)."""
    sim = simulate(n_subjects, per_subject, seed=seed)
    scaler = StandardScaler().fit(sim.static.astype(np.float64))
    encoder = LabelEncoder().fit(CLASSES)
    targets = np.repeat(np.arange(n_subjects) % len(CLASSES), per_subject)  # one class per patient
    signals = sim.signals.astype(np.float64)
    z = (signals - signals.mean(axis=1, keepdims=True)) / signals.std(axis=1, keepdims=True)
    static = scaler.transform(sim.static.astype(np.float64))
    records = []
    for i in range(len(sim)):
        peak = np.array([sim.v_latency_ms[i], sim.v_amplitude_uv[i]], dtype=float)
        records.append({"patient_id": int(sim.patient_id[i]) + 1, "static_params": static[i], "signal": z[i],
                        "v_peak": np.nan_to_num(peak, nan=0.0), "v_peak_mask": ~np.isnan(peak),
                        "target": np.int64(targets[i]), "clinical_threshold": np.float64(40.0)})
    metadata = {"version": "ultimate_v1", "static_parameters": ["Age", "Intensity", "Stimulus Rate", "FMP"],
                "peak_data": ["V Latency", "V Amplitude"], "target": "Hearing Loss Type",
                "total_samples": len(records)}
    joblib.dump({"data": records, "scaler": scaler, "label_encoder": encoder, "metadata": metadata,
                 "has_clinical_thresholds": True, "threshold_method": "combined"}, path)
    return path, sim, targets


@pytest.fixture(scope="module")
def pickle_file(tmp_path_factory):
    return original_pickle(tmp_path_factory.mktemp("original") / "ultimate_dataset_with_clinical_thresholds.pkl")


def test_the_pickle_is_read_as_written(pickle_file, capsys):
    path, sim, targets = pickle_file
    arrays = load_arrays(DataConfig(source="file", path=str(path), allow_pickle=True))
    np.testing.assert_allclose(arrays.static, sim.static, rtol=1e-5, atol=1e-4)  # the stored scaler inverted
    assert arrays.signal_unit == "z" and arrays.unit_label.startswith("z")
    np.testing.assert_allclose(arrays.signals.std(axis=1), 1.0, atol=1e-5)  # kept as z, never called µV
    assert np.isnan(arrays.v_amplitude_uv).all()  # µV marks cannot be compared with z-scored waveforms
    np.testing.assert_array_equal(arrays.v_latency_ms, sim.v_latency_ms)
    np.testing.assert_array_equal(arrays.response_present, np.isfinite(sim.v_latency_ms))
    assert arrays.truth == "marks"
    np.testing.assert_array_equal(arrays.target, targets)
    assert arrays.class_names == tuple(CLASSES)
    err = capsys.readouterr().err
    assert err.count("abr-tune: notice:") == 1
    assert "stored StandardScaler; it is inverted" in err and "µV amplitudes cannot be recovered" in err
    assert "count as no response" in err


def test_a_pickle_without_the_opt_in_names_the_override(pickle_file):
    with pytest.raises(UserError, match='add --override "data.allow_pickle: true"'):
        load_arrays(DataConfig(source="file", path=str(pickle_file[0])))


def _tiny_original(tmp_path, pickle_path) -> dict:
    raw = copy.deepcopy(ORIGINAL)
    raw.update(device="cpu", log_dir=str(tmp_path / "runs"))
    raw["data"].update(train_csv=str(pickle_path), val_csv=str(pickle_path))
    raw["loader"]["batch_size"] = 16
    raw["model"].update(d_model=32, n_layers=1, n_heads=4, ff_mult=2)
    raw["diffusion"].update(num_train_steps=100, sample_steps=4)
    raw["optim"]["amp"] = False  # on CPU AMP is off with its own notice
    raw["trainer"].update(max_epochs=1, log_every_steps=1, ckpt_dir=str(tmp_path / "ckpt"))
    raw["advanced"]["lr_warmup_steps"] = 2
    raw["logging"]["log_parameter_histograms"] = True
    raw["viz"]["max_waveform_plots"] = 4
    return raw


@pytest.fixture(scope="module")
def original_run(pickle_file, tmp_path_factory):
    """The original config (every key, tiny sizes) written as a user's file and trained from the CLI:
    (its directory, the refused first try without the pickle opt-in, the run with it)."""
    tmp = tmp_path_factory.mktemp("original_run")
    config = tmp / "train.yaml"
    config.write_text(yaml.safe_dump(_tiny_original(tmp, pickle_file[0]), allow_unicode=True, sort_keys=False))
    refused = run_cli("abr_tune.train", "--config", str(config))
    return tmp, refused, run_cli("abr_tune.train", "--config", str(config), "--override", "data.allow_pickle: true")


def test_the_original_config_loads_names_each_key_once_and_trains(pickle_file, original_run):
    tmp_path, refused, proc = original_run
    assert refused.returncode == 2 and 'add --override "data.allow_pickle: true"' in refused.stderr, refused.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    notices = [line for line in proc.stderr.splitlines() if line.startswith("abr-tune: notice:")]
    assert len(notices) == 2, notices  # one for the config's keys, one for the data file
    config_notice = proc.stderr.split("abr-tune: notice: reading")[0]
    assert "key(s) of the original pipeline's config" in config_notice
    for key in NAMED_IN_THE_NOTICE:
        assert config_notice.count(f"  {key}: ") == 1, key
    recorded = yaml.safe_load((tmp_path / "runs" / "abr_vpred_base" / "config.yaml").read_text())
    assert recorded["data"]["path"] == str(pickle_file[0]) and recorded["data"]["source"] == "file"
    assert recorded["data"]["split"] == [0.7, 0.15, 0.15] and "train_csv" not in recorded["data"]
    assert recorded["data"]["static_order"] == ["age", "intensity", "rate", "fmp"]
    assert recorded["viz"]["num_samples"] == 4 and recorded["viz"]["num_reference_plots"] == 4  # the plot cap
    assert recorded["loss"]["stft"]["eps"] == 1e-8 and recorded["trainer"]["early_stop_min_delta"] == 1e-6
    assert "performance" not in recorded and "num_workers" not in recorded["loader"]
    assert (tmp_path / "ckpt" / "abr_vpred_base_best.pt").is_file()
    acc = EventAccumulator(str(tmp_path / "runs" / "abr_vpred_base"), size_guidance={"histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"sample_cfg1.5/corr", "sample_cfg2/wave_v_latency_mae_ms", "sample/corr"} <= set(tags["scalars"])
    assert any(tag.startswith("params/") for tag in tags["histograms"])  # logging.log_parameter_histograms


def test_evaluate_reports_per_class_in_z_units_against_the_marks(original_run, tmp_path):
    from abr_tune.fidelity.evaluation import EvalOptions, evaluate

    checkpoint = original_run[0] / "ckpt" / "abr_vpred_base_best.pt"
    options = EvalOptions(split="all", cfg_scales=(1.0,), repeats=2, max_conditions=40, steps=2)
    report = evaluate(checkpoint, options, tmp_path / "eval", verbose=False)
    assert report["ground_truth"] == "marks" and "wave V marks" in report["ground_truth_detail"]
    assert report["signal_unit"] == "z"
    by_class = report["by_class"]["1"]
    assert set(by_class) <= set(CLASSES) and len(by_class) >= 3
    assert sum(m["n_conditions"] for m in by_class.values()) == report["n_conditions"]
    # Truth from the marks, not the detector scored against itself (which is 100% by construction).
    assert report["oracle"]["detection_acc"] < 1.0 and math.isfinite(report["oracle"]["wave_v_latency_mae_ms"])
    text = (tmp_path / "eval" / "summary.md").read_text()
    assert "## By hearing-loss class, CFG 1" in text and "| NORMAL |" in text and "| NÖROPATİ |" in text
    assert "MSE (z²)" in text and "µV²" not in text
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["by_class"]["1"].keys() == by_class.keys()


def test_three_mistakes_are_listed_at_once(tmp_path, capsys):
    from abr_tune.train import main

    config = tmp_path / "bad.yaml"
    config.write_text("optim:\n  lrr: 0.001\ntrainer:\n  max_epochs: 0\nmodel:\n  use_static_film: false\n")
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config)])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"abr-tune: error: 3 problems in {config}:"
    assert len(lines) == 4 and all(line.startswith("  ") for line in lines[1:])
    for fragment in ("unknown config key 'optim.lrr'; did you mean 'optim.lr'?", "trainer.max_epochs must be >= 1",
                     "'model.use_static_film: false' is not supported"):
        assert sum(fragment in line for line in lines[1:]) == 1, fragment


def _dotted(raw: dict, prefix: str = "") -> list[str]:
    return [k for key, value in raw.items()
            for k in (_dotted(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key])]


def test_the_docs_table_names_every_original_key():
    from pathlib import Path

    from abr_tune.config_doc import ORIGINAL_FILE, original_block

    doc = (Path(__file__).resolve().parents[1] / "docs" / "original-pipeline.md").read_text()
    assert original_block() in doc, "run: python -m abr_tune.config_doc --write docs/original-pipeline.md"
    assert _dotted(ORIGINAL) == list(ORIGINAL_FILE)  # the trained config above holds every key, in the file's order


def test_early_stop_min_delta_and_trainer_resume_are_honoured(tmp_path):
    import torch

    from abr_tune.config import from_dict
    from abr_tune.train import train_abr

    raw = tiny_config(tmp_path, trainer={"max_epochs": 3, "sample_every_epochs": 100, "early_stop_patience": 1,
                                         "early_stop_min_delta": 1e9}, reproducibility={"deterministic": True})
    stopped = train_abr(from_dict(raw))
    # After the first validation nothing can fall by more than 1e9: patience 1 stops after epoch 2.
    assert stopped["status"] == "early_stopped" and stopped["epochs_run"] == 2 and stopped["best_epoch"] == 1
    assert not torch.are_deterministic_algorithms_enabled()  # the run's flags are put back afterwards
    raw["trainer"].update(early_stop_patience=0, early_stop_min_delta=0.0, resume=stopped["last_checkpoint"])
    resumed = train_abr(from_dict(raw))  # as --resume: continues the same run from its epoch 2
    assert resumed["status"] == "completed" and resumed["epochs_run"] == 3 and len(resumed["history"]) == 3
    assert resumed["history"][:2] == stopped["history"]


def test_figures_of_z_scored_data_are_labelled_in_z():
    import matplotlib.text

    from abr_tune.viz.waveforms import spectrogram_grid, waveform_grid

    sim = simulate(3, 2, seed=1)
    waves = waveform_grid([(sim.signals, "recording", "b")], sim.static, 20000.0, "t", unit="z", figsize=(6.0, 4.0))
    spectra = spectrogram_grid(sim.signals, sim.static, 20000.0, "t", unit="z")
    texts = [t.get_text() for fig in (waves, spectra) for t in fig.findobj(matplotlib.text.Text)]
    assert "amplitude (z)" in texts and "magnitude (dB re 1 z)" in texts
    assert not any("µV" in t for t in texts)
    assert tuple(waves.get_size_inches()) == (6.0, 4.0)  # viz.figsize
