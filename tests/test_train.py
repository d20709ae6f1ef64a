"""End-to-end training on CPU: losses, TensorBoard tags, checkpoints, exact resume, sampling CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import run_cli, tiny_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from abr_tune.checkpoint import load_checkpoint
from abr_tune.train import train_abr
from abr_tune.training.callbacks import CHECKPOINT_FILE, StopRun

REQUIRED_SCALARS = {
    "train/loss_total", "train/loss_main_mse_v", "train/loss_stft", "val/mse_v", "epoch/train_loss_avg",
    "epoch/time_sec", "train/lr", "train/grad_norm", "sample/corr", "sample/mse_uv",
    "sample/wave_v_latency_mae_ms",
}
REQUIRED_IMAGES = {
    "samples/waveforms_generated", "samples/waveforms_reference", "samples/waveforms_comparison",
    "samples/spectrogram_generated", "samples/spectrogram_reference",
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    raw = tiny_config(tmp, trainer={"max_epochs": 4})
    return raw, train_abr(raw)


def test_loss_is_finite_and_decreases(finished_run):
    _, summary = finished_run
    losses = [h["epoch/train_loss_avg"] for h in summary["history"]]
    assert summary["status"] == "completed" and summary["epochs_run"] == 4
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    vals = [h["val/mse_v"] for h in summary["history"]]
    assert min(vals) == pytest.approx(summary["best_val_mse_v"])
    assert summary["best_epoch"] == 1 + int(np.argmin(vals))


def test_tensorboard_has_every_required_tag(finished_run):
    _, summary = finished_run
    acc = EventAccumulator(summary["run_dir"], size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert REQUIRED_SCALARS <= set(tags["scalars"]), REQUIRED_SCALARS - set(tags["scalars"])
    assert REQUIRED_IMAGES <= set(tags["images"]), REQUIRED_IMAGES - set(tags["images"])
    assert [e.step for e in acc.Scalars("val/mse_v")] == [1, 2, 3, 4]
    image = acc.Images("samples/waveforms_comparison")[-1]
    assert image.width > 300 and image.height > 150


def test_checkpoints_load_with_weights_only_and_hold_everything(finished_run):
    raw, summary = finished_run
    ckpt_dir = Path(summary["run_dir"]) / "checkpoints"
    names = sorted(p.name for p in ckpt_dir.glob("*.pt"))
    assert names == ["tiny_best.pt", "tiny_epoch0003.pt", "tiny_epoch0004.pt", "tiny_last.pt"]  # keep_last_k=2
    state = torch.load(ckpt_dir / "tiny_last.pt", map_location="cpu", weights_only=True)
    for key in ("model", "ema", "optimizer", "scheduler", "scaler", "epoch", "step", "best_metric",
                "normaliser", "rng", "config"):
        assert key in state
    assert state["epoch"] == 4 and state["config"]["optim"]["lr"] == raw["optim"]["lr"]
    assert yaml.safe_load((Path(summary["run_dir"]) / "config.yaml").read_text())["exp_name"] == "tiny"
    assert not list(ckpt_dir.glob("*.tmp"))


class _StopAfter:
    """A reporter that records metrics and interrupts the run after `epochs` epochs (like Ctrl-C)."""

    def __init__(self, epochs: int | None = None, stop: BaseException = KeyboardInterrupt()):
        self.epochs, self.stop, self.metrics, self.files = epochs, stop, [], []

    def restore_dir(self):
        return None

    def report(self, metrics, checkpoint_dir):
        self.metrics.append(metrics)
        self.files.append(sorted(p.name for p in Path(checkpoint_dir).iterdir()) if checkpoint_dir else None)
        if self.epochs is not None and metrics["epoch"] >= self.epochs:
            raise self.stop


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    straight = train_abr(tiny_config(tmp_path / "a"))
    reporter = _StopAfter(epochs=2)
    stopped = train_abr(tiny_config(tmp_path / "b"), reporter)
    assert stopped["status"] == "interrupted" and stopped["epochs_run"] == 2
    assert reporter.files[0] == [CHECKPOINT_FILE]
    resumed = train_abr(tiny_config(tmp_path / "b"), resume_from=stopped["last_checkpoint"])
    assert resumed["epochs_run"] == 3
    a = load_checkpoint(straight["last_checkpoint"])
    b = load_checkpoint(resumed["last_checkpoint"])
    for key, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][key], tensor, rtol=1e-5, atol=1e-6)
    for key, tensor in a["ema"]["shadow"].items():
        torch.testing.assert_close(b["ema"]["shadow"][key], tensor, rtol=1e-5, atol=1e-6)
    assert resumed["best_val_mse_v"] == pytest.approx(straight["best_val_mse_v"], rel=1e-5)


def test_divergence_ends_the_run_with_a_clear_status(tmp_path):
    reporter = _StopAfter()
    summary = train_abr(tiny_config(tmp_path, optim={"lr": 1.0, "grad_clip": 0.0}, trainer={"max_epochs": 6}),
                        reporter)
    assert summary["status"].startswith("diverged: non-finite loss at epoch")
    assert reporter.metrics[-1]["val/mse_v"] == math.inf and reporter.metrics[-1]["diverged"] == 1.0


def test_a_reporter_can_end_the_run_with_its_own_status(tmp_path):
    # What a scheduler (ASHA in a search) does: the run stops after the epoch it reported, with
    # the reporter's reason as its status and that epoch's checkpoint saved.
    reporter = _StopAfter(2, StopRun("stopped early by ASHA at epoch 2"))
    summary = train_abr(tiny_config(tmp_path, trainer={"max_epochs": 5, "sample_every_epochs": 10}), reporter)
    assert summary["status"] == "stopped early by ASHA at epoch 2"
    assert summary["epochs_run"] == 2 and len(reporter.metrics) == 2
    assert load_checkpoint(summary["last_checkpoint"])["epoch"] == 2


def test_existing_run_is_not_overwritten(finished_run):
    raw, summary = finished_run
    before = Path(summary["best_checkpoint"]).read_bytes()
    proc_cfg = Path(summary["run_dir"]) / "config.yaml"
    proc = run_cli("abr_tune.train", "--config", str(proc_cfg))
    assert proc.returncode == 2 and "already exists; resume it with --resume" in proc.stderr
    assert Path(summary["best_checkpoint"]).read_bytes() == before


def test_sample_cli_writes_png_and_npz(finished_run, tmp_path):
    _, summary = finished_run
    common = ["abr_tune.sample", "--checkpoint", summary["best_checkpoint"], "--age", "30", "--intensity", "80",
              "--rate", "21.1", "--fmp", "3", "--n", "3", "--cfg-scale", "1.5"]
    png, npz = tmp_path / "s.png", tmp_path / "s.npz"
    assert run_cli(*common, "--out", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_cli(*common, "--out", str(npz)).returncode == 0
    data = np.load(npz)
    assert data["signals_uv"].shape == (3, 200) and np.isfinite(data["signals_uv"]).all()
    assert data["time_ms"][-1] == pytest.approx(9.95)
    np.testing.assert_allclose(data["static"][0], [30, 80, 21.1, 3], rtol=1e-5)


def test_early_stopping_honours_patience(tmp_path):
    # lr ~ 0: the weights never change, so val/mse_v never improves after epoch 1.
    summary = train_abr(tiny_config(tmp_path, optim={"lr": 1e-30}, trainer={"max_epochs": 6, "early_stop_patience": 2,
                                                                           "sample_every_epochs": 10}))
    assert summary["status"] == "early_stopped" and summary["epochs_run"] == 3 and summary["best_epoch"] == 1


def test_lr_schedule_warms_up_then_follows_a_cosine():
    from abr_tune.config import from_dict
    from abr_tune.training.state import lr_multiplier

    cfg = from_dict({"advanced": {"lr_warmup_steps": 10, "min_lr_ratio": 0.1}})
    f = lr_multiplier(cfg, total_steps=110)
    assert [round(f(s), 3) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5) and f(110) == pytest.approx(0.1)
    const = lr_multiplier(from_dict({"advanced": {"lr_warmup_steps": 0, "lr_scheduler": "constant"}}), 100)
    assert const(0) == const(99) == 1.0


def test_printed_commands_quote_a_path_with_spaces(tmp_path):
    """A command the tool prints can be pasted back into a shell, even under 'My runs/'."""
    import shlex

    import yaml

    raw = tiny_config(tmp_path / "My runs", trainer={"max_epochs": 1, "sample_every_epochs": 10})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    proc = run_cli("abr_tune.train", "--config", str(tmp_path / "cfg.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout.splitlines() if "tensorboard --logdir" in ln)
    command = line.split("(", 1)[1].rstrip(")")
    assert shlex.split(command) == ["tensorboard", "--logdir", raw["log_dir"]]
