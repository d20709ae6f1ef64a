"""`python -m abr_tune.evaluate` end to end on a tiny checkpoint; user files; bad input."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from conftest import assert_user_error, run_cli, tiny_config

from abr_tune.data import simulate
from abr_tune.errors import UserError
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
                   "--out", str(out))
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
    assert report["ground_truth"] == "simulator" and report["best_cfg_scale"]["corr"] in (1.0, 2.0)
    summary = (out / "summary.md").read_text()
    assert "| CFG scale | Pearson r |" in summary and "| oracle |" in summary and "| 2 |" in summary


def test_user_file_without_marks_uses_the_picker_on_the_recordings(checkpoint, tmp_path):
    sim = simulate(6, 4, seed=9)
    path = tmp_path / "clinic.npz"
    np.savez(path, signals=sim.signals, static=sim.static, patient_id=sim.patient_id)  # no v_latency_ms
    options = EvalOptions(split="all", cfg_scales=(1.0,), repeats=2, max_conditions=10, steps=2,
                          data_path=str(path))
    report = evaluate(checkpoint, options, verbose=False)
    assert report["data"] == str(path) and report["n_conditions"] == 10
    assert report["ground_truth"].startswith("marked v_latency_ms")
    oracle = report["oracle"]
    assert oracle["detection_acc"] == 1.0  # truth is the detector's verdict on the recording itself
    assert math.isnan(oracle["wave_v_latency_mae_ms"])  # nothing marked: the picker has no truth to meet
    assert math.isfinite(report["by_cfg_scale"]["1"]["mse_uv"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--checkpoint", "missing.pt"], "checkpoint not found: 'missing.pt'"),
        (["--split", "holdout"], "--split must be one of train, val, test, all"),
    ],
)
def test_bad_arguments(checkpoint, tmp_path, args, fragment):
    full = ["--checkpoint", checkpoint, "--out", str(tmp_path / "eval"), *args]
    assert_user_error(run_cli("abr_tune.evaluate", *full), fragment)
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"repeats": 0}, "--repeats must be >= 1"), ({"max_conditions": 0}, "--max-conditions must be >= 1"),
     ({"steps": 0}, "--steps must be >= 1"), ({"cfg_scales": (1.0, -1.0)}, "--cfg-scale needs one or more values")],
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
