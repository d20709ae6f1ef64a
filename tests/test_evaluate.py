"""`python -m abr_tune.evaluate` end to end on a tiny checkpoint; user files; bad input."""

from __future__ import annotations

import json
import math
import os
import re
import shutil

import numpy as np
import pytest
from conftest import assert_user_error, run_cli, tiny_config
from test_generator import make_checkpoint

from abr_tune.data import simulate
from abr_tune.errors import UserError
from abr_tune.evaluate import check_out_dir, default_out
from abr_tune.fidelity.evaluation import EvalOptions, evaluate
from abr_tune.train import train_abr

PER_SCALE_KEYS = {
    "corr", "corr_truth", "mse_uv", "spectral_distance_db", "wave_v_latency_mae_ms", "wave_v_latency_bias_ms",
    "wave_v_amplitude_error_pct", "wave_v_found_frac", "wave_i_latency_mae_ms", "wave_iii_latency_mae_ms",
    "detection_acc", "detection_acc_clear", "detection_sensitivity", "detection_specificity",
    "li_slope_ms_per_db", "li_slope_truth_ms_per_db", "li_slope_rel_error", "rate_effect_ms_per_hz",
    "infant_delay_ms", "diversity_generated_uv", "diversity_real_uv", "diversity_ratio", "collapsed",
}
FAST = ["--repeats", "2", "--max-conditions", "12", "--steps", "3"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    summary = train_abr(tiny_config(tmp_path_factory.mktemp("ckpt"), trainer={"max_epochs": 1}))
    return summary["best_checkpoint"]


def test_cli_writes_every_promised_file(checkpoint, tmp_path):
    out = tmp_path / "eval"
    proc = run_cli("abr_tune.evaluate", "--checkpoint", checkpoint, "--cfg-scale", "1", "2", *FAST,
                   "--eta", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"wrote metrics.json, summary.md and figures to {out}" in proc.stdout
    pngs = ["waveforms_cfg1.png", "waveforms_cfg2.png", "latency_intensity.png", "error_histograms.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*pngs, "metrics.json", "summary.md"])
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "metrics.json").read_text())  # strict JSON: NaN written as null
    assert set(report["by_cfg_scale"]) == {"1", "2"}
    for metrics in report["by_cfg_scale"].values():
        assert PER_SCALE_KEYS <= set(metrics)
        assert -1 <= metrics["corr"] <= 1 and metrics["mse_uv"] > 0 and 0 <= metrics["detection_acc"] <= 1
    assert PER_SCALE_KEYS <= set(report["oracle"]) and report["oracle"]["detection_acc"] > 0.5
    assert report["n_conditions"] == 12 and report["repeats"] == 2 and report["sample_steps"] == 3
    assert report["ddim_eta"] == 1.0  # the sampler that ran, not the checkpoint's config (eta 0)
    assert PER_SCALE_KEYS <= set(report["ideal"]) and set(report["ideal_relative_to_oracle"]) >= {"corr_truth"}
    assert report["ground_truth"] == "simulator" and report["best_cfg_scale"]["corr"] in (1.0, 2.0)
    summary = (out / "summary.md").read_text()
    assert "| CFG scale | Pearson r |" in summary and "| oracle |" in summary and "| 2 |" in summary
    assert summary.count("| ideal generator |") == 3  # both tables and the relative one


def test_user_file_without_marks_uses_the_picker_on_the_recordings(checkpoint, tmp_path):
    sim = simulate(6, 4, seed=9)
    path = tmp_path / "clinic.npz"
    np.savez(path, signals=sim.signals, static=sim.static, patient_id=sim.patient_id)  # no v_latency_ms
    options = EvalOptions(split="all", cfg_scales=(1.0,), repeats=2, max_conditions=10, steps=2,
                          data_path=str(path))
    report = evaluate(checkpoint, options, verbose=False)
    assert report["data"] == str(path) and report["n_conditions"] == 10
    assert report["ground_truth"] == "detector"
    oracle = report["oracle"]
    assert oracle["detection_acc"] == 1.0  # truth is the detector's verdict on the recording itself
    assert math.isnan(oracle["wave_v_latency_mae_ms"])  # nothing marked: the picker has no truth to meet
    assert math.isfinite(report["by_cfg_scale"]["1"]["mse_uv"])
    assert report["ideal"] is None  # no simulator behind a user's file: no ideal generator row


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--checkpoint", "missing.pt"], "checkpoint not found: 'missing.pt'"),
        (["--split", "holdout"], "--split must be one of train, val, test, all"),
        (["--cfg-scale", "nan"], "--cfg-scale must be a finite number in [0, 50], got nan"),
        (["--cfg-scale", "1", "inf"], "--cfg-scale must be a finite number in [0, 50], got inf"),
        (["--bogus"], "unrecognized arguments: --bogus (see --help)"),  # usage errors: the same one line
    ],
)
def test_bad_arguments(checkpoint, tmp_path, args, fragment):
    full = ["--checkpoint", checkpoint, "--out", str(tmp_path / "eval"), *args]
    assert_user_error(run_cli("abr_tune.evaluate", *full), fragment)
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"repeats": 0}, "--repeats must be an integer in [1, 1000], got 0"),
     ({"max_conditions": 0}, "--max-conditions must be an integer >= 1, got 0"),
     ({"steps": 0}, "--steps must be an integer >= 1, got 0"),
     ({"eta": 1.5}, "--eta must be a finite number in [0, 1], got 1.5"),
     ({"eta": float("nan")}, "--eta must be a finite number in [0, 1], got nan"),
     ({"cfg_scales": (1.0, -1.0)}, "--cfg-scale must be a finite number in [0, 50], got -1"),
     ({"cfg_scales": (float("nan"),)}, "--cfg-scale must be a finite number in [0, 50], got nan"),
     ({"cfg_scales": ()}, "--cfg-scale needs one or more values in [0, 50]"),
     ({"seed": -1}, "--seed must be an integer in [0, 4294967295], got -1")],
)
def test_bad_options_are_user_errors(change, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        EvalOptions(**change).check()


def test_existing_out_is_not_overwritten_without_force(checkpoint, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    proc = run_cli("abr_tune.evaluate", "--checkpoint", checkpoint, "--out", str(out), *FAST)
    assert_user_error(proc, "already exists; choose another --out or pass --force")
    assert (out / "metrics.json").read_text() == "{}"


def test_default_out_is_under_the_run_only_for_a_run_checkpoint(tmp_path):
    run_ckpt = tmp_path / "runs" / "tiny" / "checkpoints" / "tiny_best.pt"
    assert default_out(run_ckpt, "test") == tmp_path / "runs" / "tiny" / "eval" / "tiny_best_test"
    assert default_out(tmp_path / "models" / "m.pt", "val") == tmp_path / "models" / "eval" / "m_val"


def test_a_checkpoint_outside_a_run_is_evaluated_beside_itself(checkpoint, tmp_path):
    flat = tmp_path / "models" / "model.pt"
    flat.parent.mkdir()
    shutil.copy(checkpoint, flat)
    proc = run_cli("abr_tune.evaluate", "--checkpoint", str(flat), "--cfg-scale", "1", *FAST)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "models" / "eval" / "model_test" / "metrics.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]  # not the grandparent


def test_out_that_is_a_file_or_under_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="is a file; pass a directory"):
        check_out_dir(tmp_path / "notes.txt", force=True)
    with pytest.raises(UserError, match=re.escape(f"cannot be written: '{tmp_path / 'notes.txt'}' is not a directory")):
        check_out_dir(tmp_path / "notes.txt" / "eval", force=False)
    assert (tmp_path / "notes.txt").read_text() == "keep" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the permission bits say; the path-under-a-file "
                    "test covers an unwritable parent")
def test_out_in_a_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        with pytest.raises(UserError, match="is not writable"):
            check_out_dir(locked / "eval", force=False)
    finally:
        locked.chmod(0o755)


def test_checkpoint_without_normaliser_is_one_error_line(tmp_path):
    path = make_checkpoint(tmp_path / "c.pt", drop=("normaliser",))
    proc = run_cli("abr_tune.evaluate", "--checkpoint", path, "--out", str(tmp_path / "eval"), *FAST)
    assert_user_error(proc, "lacks normaliser (a training checkpoint holds")
    assert not (tmp_path / "eval").exists()


def test_conditions_outside_the_trained_range_are_warned_about(checkpoint, tmp_path, capsys):
    sim = simulate(6, 4, seed=9)
    sim.static[:, 0] = 30.0
    sim.static[:3, 0] = 110.0  # older than anyone in the tiny synthetic train split
    path = tmp_path / "old.npz"
    np.savez(path, signals=sim.signals, static=sim.static, patient_id=sim.patient_id)
    options = EvalOptions(split="all", cfg_scales=(1.0,), repeats=2, max_conditions=24, steps=2, data_path=str(path))
    evaluate(checkpoint, options, verbose=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("abr-tune: warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(
        "abr-tune: warning: 3 of 24 conditions have age outside the range the model was trained on, [0")
    assert warnings[0].endswith("years (3 above it, up to 110); it extrapolates there")
