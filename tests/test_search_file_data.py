"""A search on a recordings file: its default objective sees the samples, its smoke test shrinks the file's
data and scores a finite C2ST (one run with a real local Ray), and a split that cannot score it is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mouse_like import FS, write_recordings

from abr_tune.config import from_dict
from abr_tune.data import prepare_splits
from abr_tune.hpo.plan import plan_new
from abr_tune.search import build_parser

ROOT = Path(__file__).resolve().parents[1]
FILE_ORDER = ["intensity", "age"]  # mouse_like.write_recordings' static_order


def plan(tmp_path: Path, space: Path, *flags: str):
    data = tmp_path / "mice.npz"
    write_recordings(data, 12, seed=0)
    args = build_parser().parse_args(["--space", str(space), "--storage-path", str(tmp_path),
                                      "--override", f"data.path: {data}", *flags])
    return plan_new(args)


def test_the_mouse_space_smoke_test_keeps_8_subjects_2_validating_and_optimises_the_c2st(tmp_path):
    exp = plan(tmp_path, ROOT / "search_spaces" / "mouse.yaml", "--smoke-test")
    assert exp.space.metric == "sample/c2st_acc" and exp.space.mode == "min"
    cfg = from_dict(exp.space.base)
    assert cfg.data.max_subjects == 8 and cfg.model.n_layers == 1  # the file shrunk, and the model
    splits = prepare_splits(cfg.data)
    subjects = {p for s in (splits.train, splits.val, splits.test) for p in s.patient_id}
    assert len(subjects) == 8 and len(set(splits.val.patient_id)) == 2  # the C2ST's folds need two
    (tmp_path / "full").mkdir()
    full = plan(tmp_path / "full", ROOT / "search_spaces" / "mouse.yaml")
    assert from_dict(full.space.base).data.max_subjects is None


def test_a_file_space_without_a_metric_defaults_to_the_c2st_and_synthetic_keeps_val_mse_v(tmp_path):
    params = {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}
    on_file = tmp_path / "file.yaml"
    on_file.write_text(yaml.safe_dump({"base_config": str(ROOT / "configs" / "mouse.yaml"), "params": params}))
    assert plan(tmp_path, on_file).space.metric == "sample/c2st_acc"
    human = tmp_path / "human.yaml"
    human.write_text(yaml.safe_dump({"base_config": str(ROOT / "configs" / "mouse.yaml"), "params": params,
                                     "overrides": {"data.species": "human"}}))
    (tmp_path / "h").mkdir()
    assert plan(tmp_path / "h", human).space.metric == "val/mse_v"  # a clinic file keeps its default
    synthetic = tmp_path / "synthetic.yaml"
    synthetic.write_text(yaml.safe_dump({"base_config": str(ROOT / "configs" / "cpu.yaml"), "params": params}))
    args = build_parser().parse_args(["--space", str(synthetic), "--storage-path", str(tmp_path)])
    assert plan_new(args).space.metric == "val/mse_v"


def search(tmp_path: Path, *flags: str, override: str = "") -> subprocess.CompletedProcess:
    data = tmp_path / "mice.npz"
    write_recordings(data, 12, seed=0)
    cmd = [sys.executable, "-m", "abr_tune.search", "--space", str(ROOT / "search_spaces" / "mouse.yaml"),
           "--storage-path", str(tmp_path / "runs"), "--name", "mice", "--override", f"data.path: {data}{override}",
           *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_the_mouse_smoke_search_scores_every_trial_by_a_finite_c2st(tmp_path):
    done = search(tmp_path, "--smoke-test", "--confirm-top", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Result dict has no key" not in done.stdout + done.stderr  # Tune's checkpoints scored by every epoch
    study = optuna.load_study(study_name="mice", storage=f"sqlite:///{tmp_path / 'runs' / 'mice' / 'optuna.db'}")
    states = {t.state for t in study.trials}
    values = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 4 and states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert values and all(0.0 <= v <= 1.0 for v in values)  # epochs without a sample pass over
    # every trial's run records the file's own rate and condition order (loaded once, in the driver)
    configs = list((tmp_path / "runs" / "mice").glob("trial_*/train/config.yaml"))
    assert len(configs) == 4
    for path in configs:
        data = yaml.safe_load(path.read_text())["data"]
        assert data["sample_rate_hz"] == pytest.approx(FS) and data["static_order"] == FILE_ORDER
    assert (tmp_path / "runs" / "mice" / "report" / "best_trial_samples.png").is_file()
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(0.0 <= v <= 1.0 for t in pruned for v in t.intermediate_values.values())  # ASHA's rung sampled


def test_a_c2st_search_with_one_validation_subject_is_refused_before_ray(tmp_path):
    done = search(tmp_path, override=", data.split: [0.8, 0.05, 0.15]")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "sample/c2st_acc needs the recordings of at least 2 validation subjects" in done.stderr
    assert not (tmp_path / "runs" / "mice" / "optuna.db").exists()
