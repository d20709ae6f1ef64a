"""A resumed run's TensorBoard log holds every epoch and step once: what the run logged after the
checkpoint it resumes from (an epoch logged before a kill cut its save short, or the epochs after a
_best.pt or periodic checkpoint) is removed, for epoch-indexed and step-indexed tags alike."""

from __future__ import annotations

import yaml
from conftest import run_cli, tiny_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def _steps(run_dir, tag: str) -> list[int]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_resuming_from_an_earlier_checkpoint_logs_each_epoch_and_step_once(tmp_path):
    raw = tiny_config(tmp_path, trainer={"max_epochs": 4, "keep_last_k": 5, "sample_every_epochs": 2})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    assert run_cli("abr_tune.train", "--config", str(tmp_path / "cfg.yaml")).returncode == 0
    run_dir, ckpts = tmp_path / "runs" / "tiny", tmp_path / "runs" / "tiny" / "checkpoints"
    steps_before = _steps(run_dir, "train/loss_total")
    assert _steps(run_dir, "val/mse_v") == [1, 2, 3, 4]

    proc = run_cli("abr_tune.train", "--resume", str(ckpts / "tiny_epoch0002.pt"))  # epochs 3 and 4 again
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _steps(run_dir, "val/mse_v") == [1, 2, 3, 4]
    assert _steps(run_dir, "epoch/train_loss_avg") == [1, 2, 3, 4]
    assert _steps(run_dir, "sample/corr") == [2, 4]
    assert _steps(run_dir, "train/loss_total") == steps_before  # the same steps, each once
    assert len(set(steps_before)) == len(steps_before)
