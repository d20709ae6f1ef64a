"""A search on a recordings file: its default objective sees the samples, its smoke test shrinks the file's
data (planning only: no Ray)."""

from __future__ import annotations

from pathlib import Path

import yaml
from mouse_like import write_recordings

from abr_tune.config import from_dict
from abr_tune.data import prepare_splits
from abr_tune.hpo.plan import plan_new
from abr_tune.search import build_parser

ROOT = Path(__file__).resolve().parents[1]


def plan(tmp_path: Path, space: Path, *flags: str):
    data = tmp_path / "mice.npz"
    write_recordings(data, 12, seed=0)
    args = build_parser().parse_args(["--space", str(space), "--storage-path", str(tmp_path),
                                      "--override", f"data.path: {data}", *flags])
    return plan_new(args)


def test_the_mouse_space_smoke_test_keeps_6_subjects_and_optimises_the_c2st(tmp_path):
    exp = plan(tmp_path, ROOT / "search_spaces" / "mouse.yaml", "--smoke-test")
    assert exp.space.metric == "sample/c2st_acc" and exp.space.mode == "min"
    cfg = from_dict(exp.space.base)
    assert cfg.data.max_subjects == 6 and cfg.model.n_layers == 1  # the file shrunk, and the model
    splits = prepare_splits(cfg.data)
    subjects = {p for s in (splits.train, splits.val, splits.test) for p in s.patient_id}
    assert len(subjects) == 6
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
