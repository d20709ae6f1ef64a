"""Resuming a run: it continues its own run or refuses, and a changed key takes effect or is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import assert_user_error, run_cli, tiny_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from abr_tune.checkpoint import load_checkpoint
from abr_tune.config import from_dict
from abr_tune.errors import UserError
from abr_tune.train import train_abr
from abr_tune.training.callbacks import CHECKPOINT_FILE
from abr_tune.training.state import lr_multiplier, setup_run

SHORT = {"max_epochs": 2, "sample_every_epochs": 5}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _config_file(tmp_path: Path, name: str, **sections) -> tuple[dict, Path]:
    raw = tiny_config(tmp_path, exp_name=name, trainer=SHORT, **sections)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return raw, path


def _longer(raw: dict, epochs: int) -> dict:
    return {**raw, "trainer": {**raw["trainer"], "max_epochs": epochs}}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished runs side by side in one log_dir: 'tiny' and 'other' (2 epochs each)."""
    tmp = tmp_path_factory.mktemp("two_runs")
    runs = {name: _config_file(tmp, name) for name in ("tiny", "other")}
    for raw, _ in runs.values():
        train_abr(raw)
    return tmp, runs


def test_resume_with_another_runs_config_is_refused_and_writes_nothing(two_runs):
    tmp, runs = two_runs
    tiny_last = tmp / "runs/tiny/checkpoints/tiny_last.pt"
    before = _files(tmp / "runs")
    assert {"other/checkpoints/other_epoch0001.pt", "other/checkpoints/other_epoch0002.pt"} <= set(before)
    proc = run_cli("abr_tune.train", "--config", str(runs["other"][1]), "--resume", str(tiny_last),
                   "--override", "trainer.max_epochs: 3")
    assert_user_error(proc, f"belongs to the run 'tiny' in '{tmp / 'runs/tiny'}'")
    assert f"puts the run 'other' in '{tmp / 'runs/other'}'" in proc.stderr
    with pytest.raises(UserError, match="a resume continues its own run and never writes into another"):
        train_abr(_longer(runs["other"][0], 3), resume_from=tiny_last)
    assert _files(tmp / "runs") == before  # both runs byte for byte, periodic checkpoints included


@pytest.mark.parametrize(("override", "fragment"), [
    ("model.d_model: 64", "cannot change model.d_model on resume (model.d_model 32 -> 64)"),
    ("seed: 4", "cannot change seed on resume (seed 3 -> 4)"),
    ("trainer.max_epochs: 3, loader.batch_size: 8, optim.weight_decay: 0.1",
     "cannot change loader.batch_size, optim.weight_decay on resume"),
    ("exp_name: renamed", "belongs to the run 'tiny'"),
    ("trainer.early_stop_patience: 3", "has already trained 2 epochs and trainer.max_epochs is 2"),
])
def test_resume_refuses_what_it_cannot_honour(two_runs, override, fragment):
    tmp, _ = two_runs
    before = _files(tmp / "runs")
    proc = run_cli("abr_tune.train", "--resume", str(tmp / "runs/tiny/checkpoints/tiny_last.pt"),
                   "--override", override)
    assert_user_error(proc, fragment)
    assert _files(tmp / "runs") == before


def test_resume_applies_a_new_lr_and_length_for_real(tmp_path):
    raw, _ = _config_file(tmp_path, "tiny")
    last = Path(train_abr(raw)["last_checkpoint"])
    state = load_checkpoint(last)
    resumed_step, per_epoch = state["step"], state["step"] // state["epoch"]
    new = from_dict({**_longer(raw, 3), "optim": {**raw["optim"], "lr": 0.05}})
    expected = lr_multiplier(new, per_epoch * 3)

    # the lr the first resumed step uses: the new base on the new schedule, at the resumed step
    run = setup_run(new, None, state)
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * expected(resumed_step), rel=1e-9)

    proc = run_cli("abr_tune.train", "--resume", str(last), "--override", "optim.lr: 0.05, trainer.max_epochs: 3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recorded = yaml.safe_load((tmp_path / "runs/tiny/config.yaml").read_text())
    assert recorded["optim"]["lr"] == 0.05 and recorded["trainer"]["max_epochs"] == 3
    final = load_checkpoint(last)
    assert final["epoch"] == 3 and final["config"]["optim"]["lr"] == 0.05
    assert final["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.05 * expected(final["step"]), rel=1e-9)
    acc = EventAccumulator(str(tmp_path / "runs/tiny"), size_guidance={"scalars": 0})
    acc.Reload()
    after = [(e.step, e.value) for e in acc.Scalars("train/lr") if e.step > resumed_step]
    assert [s for s, _ in after] == list(range(resumed_step + 1, final["step"] + 1))
    for step, value in after:
        assert value == pytest.approx(0.05 * expected(step), rel=1e-6)


def test_a_moved_run_resumes_in_its_new_directory(tmp_path):
    raw, _ = _config_file(tmp_path, "tiny")
    train_abr(raw)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "runs/tiny", moved / "tiny")
    proc = run_cli("abr_tune.train", "--resume", str(moved / "tiny/checkpoints/tiny_last.pt"),
                   "--override", "trainer.max_epochs: 3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp_path / "runs/tiny").exists()
    assert yaml.safe_load((moved / "tiny/config.yaml").read_text())["log_dir"] == str(moved)
    assert load_checkpoint(moved / "tiny/checkpoints/tiny_last.pt")["epoch"] == 3

    loose = tmp_path / "loose.pt"  # a checkpoint outside any run: which run it continues is unknown
    shutil.copyfile(moved / "tiny/checkpoints/tiny_last.pt", loose)
    proc = run_cli("abr_tune.train", "--resume", str(loose), "--override", "trainer.max_epochs: 4")
    assert_user_error(proc, f"'{loose}' is not in its run's checkpoint directory")


def test_changed_early_stopping_takes_effect_on_resume(tmp_path):
    # lr ~ 0: the weights never change, so val/mse_v never improves after epoch 1.
    raw = tiny_config(tmp_path, optim={"lr": 1e-30}, trainer={**SHORT, "early_stop_patience": 0})
    first = train_abr(raw)
    assert first["status"] == "completed"
    more = _longer(raw, 6)
    more["trainer"]["early_stop_patience"] = 2
    resumed = train_abr(more, resume_from=first["last_checkpoint"])
    assert resumed["status"] == "early_stopped" and resumed["epochs_run"] == 3 and resumed["best_epoch"] == 1


class _Restore:
    """A caller that hands back a checkpoint directory (what Tune does when it restores a trial)."""

    def __init__(self, directory: Path):
        self.directory = directory

    def restore_dir(self):
        return self.directory

    def report(self, metrics, checkpoint_dir):
        pass


def test_a_callers_restore_may_move_the_run_but_not_change_its_training(tmp_path):
    raw, _ = _config_file(tmp_path, "tiny")
    restore = tmp_path / "tune_checkpoint"
    restore.mkdir()
    shutil.copyfile(train_abr(raw)["last_checkpoint"], restore / CHECKPOINT_FILE)
    with pytest.raises(UserError, match="cannot change seed on resume"):
        train_abr({**_longer(raw, 3), "seed": 4}, _Restore(restore))
    elsewhere = {**_longer(raw, 3), "log_dir": str(tmp_path / "copied")}
    summary = train_abr(elsewhere, _Restore(restore))
    assert summary["epochs_run"] == 3 and summary["run_dir"] == str(tmp_path / "copied/tiny")
