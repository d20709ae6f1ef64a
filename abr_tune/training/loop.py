"""train_abr(config, reporter=None): the full training pipeline.

The loop knows nothing about who drives it (minGPT's trainer/callback split): a caller such
as Ray Tune receives each epoch's metrics and checkpoint through a `Reporter`
(`abr_tune.training.callbacks`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CheckpointManager, save_atomic
from ..config import TrainConfig, from_dict
from ..data import ABRArrays, pick_reference_indices
from ..errors import UserError
from ..formatting import shell
from ..metrics_registry import wave_metric
from . import reproducibility
from .callbacks import CHECKPOINT_FILE, Reporter, StopRun, Tracker
from .placement import check_writable
from .resume import load_resume_state
from .state import Run, samples_per_epoch, setup_run
from .step import Diverged, train_epoch
from .tensorboard import RunLogger
from .validation import mse_v, sample_round


def train_abr(config: TrainConfig | dict, reporter: Reporter | None = None, *,
              arrays: ABRArrays | None = None, resume_from: str | Path | None = None,
              tracker: Tracker | None = None) -> dict[str, Any]:
    """Train the ABR diffusion model; return a summary (best val/mse_v, best epoch, checkpoint paths, status).
    A `tracker` (e.g. MLflow's, `abr_tune.tracking`) watches each epoch without driving the run."""
    cfg = config if isinstance(config, TrainConfig) else from_dict(config)
    resume_state = load_resume_state(cfg, reporter, _resume_from(cfg, reporter, resume_from))
    check_writable(cfg)
    ckpts = CheckpointManager(cfg.checkpoint_dir, cfg.exp_name, cfg.trainer.keep_last_k)
    if resume_state is None and reporter is None:
        _refuse_to_overwrite(ckpts)
    run = setup_run(cfg, arrays, resume_state)
    _notice_amp(cfg, run.device)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    logger = RunLogger(cfg.run_dir, resume_at=(run.epoch, run.step) if resume_state else None)
    sample_idx = pick_reference_indices(
        run.val.arrays, max(cfg.viz.num_samples, cfg.viz.num_reference_plots, cfg.trainer.sample_conditions),
        cfg.trainer.val_seed)
    status = "completed"
    restore_flags = reproducibility.apply(cfg.reproducibility)
    try:
        if tracker is not None:
            tracker.start(cfg, resumed=resume_state is not None)
        status = _loop(run, ckpts, logger, reporter, sample_idx, tracker)
    except StopRun as stop:  # after the last epoch, a stop changes nothing: the run completed
        done = run.epoch >= cfg.trainer.max_epochs
        status = "completed" if done else str(stop) or f"stopped by the caller at epoch {run.epoch}"
    except KeyboardInterrupt:
        status = "interrupted"
        _say(cfg, f"interrupted during epoch {run.epoch + 1}; last checkpoint: {ckpts.last_path}\n"
                  f"resume with: python -m abr_tune.train --resume {shell(ckpts.last_path)}")
    except BaseException:
        if tracker is not None:
            tracker.finish(None)
        raise
    finally:
        logger.close()
        restore_flags()
    summary = _summary(run, ckpts, status)
    if tracker is not None:
        tracker.finish(summary)
    return summary


def _loop(run: Run, ckpts: CheckpointManager, logger: RunLogger, reporter: Reporter | None, sample_idx,
          tracker: Tracker | None = None) -> str:
    cfg = run.cfg
    while run.epoch < cfg.trainer.max_epochs:
        started = time.perf_counter()
        with _progress(cfg, run) as progress:
            try:
                train_loss = train_epoch(run, logger, progress)
            except Diverged:
                return _diverged(run, ckpts, reporter)
        train_time = time.perf_counter() - started
        run.epoch += 1
        metrics = {"epoch": float(run.epoch), "epoch/train_loss_avg": train_loss,
                   "train/lr": run.scheduler.get_last_lr()[0],
                   "epoch/samples_per_sec": samples_per_epoch(run) / train_time}
        improved = _validate(run, metrics)
        if (run.epoch % cfg.trainer.sample_every_epochs == 0 or run.epoch == cfg.trainer.max_epochs
                or run.epoch in cfg.trainer.sample_epochs):
            _sample(run, logger, sample_idx, metrics)
        metrics["epoch/time_sec"] = time.perf_counter() - started
        run.history.append(metrics)
        logger.epoch_scalars(run.epoch, run.step, metrics)
        if tracker is not None:
            tracker.epoch(run.epoch, metrics)
        if cfg.logging.log_parameter_histograms:
            logger.parameter_histograms(run.epoch, run.model)
        _save(run, ckpts, improved, reporter, metrics)
        _say(cfg, _epoch_line(run, metrics, improved))
        if cfg.trainer.early_stop_patience and run.bad_validations >= cfg.trainer.early_stop_patience:
            _say(cfg, f"early stop: val/mse_v did not improve for {run.bad_validations} validations")
            return "early_stopped"
    return "completed"


def _validate(run: Run, metrics: dict[str, float]) -> bool:
    """val/mse_v with the EMA weights; updates best and patience. Returns whether it improved."""
    if run.epoch % run.cfg.trainer.validate_every_epochs and run.epoch != run.cfg.trainer.max_epochs:
        return False
    with run.ema.swap_into(run.model):
        value = mse_v(run.model, run.schedule, run.val, run.val_draw, 4 * run.cfg.loader.batch_size, run.autocast)
    metrics["val/mse_v"] = value
    if value < run.best_metric - run.cfg.trainer.early_stop_min_delta:  # inf - delta is inf: the first one improves
        run.best_metric, run.best_epoch, run.bad_validations = value, run.epoch, 0
        return True
    run.bad_validations += 1
    return False


def _sample(run: Run, logger: RunLogger, sample_idx, metrics: dict[str, float]) -> None:
    """DDIM sample metrics at diffusion.cfg_scale and at each advanced.val_sample_cfg_scales (sample_cfg<s>/*)."""
    cfg = run.cfg
    with run.ema.swap_into(run.model):
        sampled, generated = sample_round(run.model, run.schedule, run.val, sample_idx, cfg, run.normaliser,
                                          run.autocast)
        for scale in cfg.advanced.val_sample_cfg_scales:
            extra, _ = sample_round(run.model, run.schedule, run.val, sample_idx, cfg, run.normaliser, run.autocast,
                                    cfg_scale=scale)
            metrics.update({f"sample_cfg{scale:g}/{key.partition('/')[2]}": v for key, v in extra.items()})
    metrics.update(sampled)
    shown, recorded = (np.linspace(0, len(sample_idx) - 1, min(k, len(sample_idx))).round().astype(int)
                       for k in (cfg.viz.num_samples, cfg.viz.num_reference_plots))
    logger.sample_figures(run.epoch, generated[shown], run.val.arrays.subset(sample_idx[shown]), cfg,
                          run.val.arrays.subset(sample_idx[recorded]))


def _save(run: Run, ckpts: CheckpointManager, improved: bool, reporter: Reporter | None,
          metrics: dict[str, float]) -> None:
    state = run.state_dict()
    save_atomic(state, ckpts.last_path)
    if improved:
        shutil.copyfile(ckpts.last_path, ckpts.best_path.with_suffix(".tmp"))
        os.replace(ckpts.best_path.with_suffix(".tmp"), ckpts.best_path)
    if run.epoch % run.cfg.trainer.save_every_epochs == 0 and run.cfg.trainer.keep_last_k:
        ckpts.save_periodic(state, run.epoch)
    if reporter is not None:
        _report(reporter, metrics, ckpts.last_path)


def _report(reporter: Reporter, metrics: dict[str, float], checkpoint: Path | None) -> None:
    if checkpoint is None or not checkpoint.exists():
        reporter.report(metrics, None)
        return
    with tempfile.TemporaryDirectory(prefix="abr_tune_ckpt_") as tmp:
        shutil.copyfile(checkpoint, Path(tmp) / CHECKPOINT_FILE)
        reporter.report(metrics, Path(tmp))


def _diverged(run: Run, ckpts: CheckpointManager, reporter: Reporter | None) -> str:
    status = f"diverged: non-finite loss at epoch {run.epoch + 1}"
    _say(run.cfg, status + " (lower optim.lr or check the data)")
    if reporter is not None:
        metrics = {"epoch": float(run.epoch + 1), "val/mse_v": math.inf, "diverged": 1.0}
        with contextlib.suppress(StopRun):  # the run ends here either way; keep the diverged status
            _report(reporter, metrics, ckpts.last_path if run.epoch else None)
    return status


# ---------------------------------------------------------------- helpers

def _resume_from(cfg: TrainConfig, reporter: Reporter | None, resume_from: str | Path | None) -> str | Path | None:
    """--resume (`resume_from`), else trainer.resume: a single run's; a search continues its trials itself."""
    if resume_from is not None or not cfg.trainer.resume:
        return resume_from
    if reporter is not None:
        raise UserError("trainer.resume is for a single training run; a search continues its trials with "
                        "python -m abr_tune.search --resume EXPERIMENT; remove trainer.resume from the base config")
    return cfg.trainer.resume


def _refuse_to_overwrite(ckpts: CheckpointManager) -> None:
    existing = [p for p in (ckpts.best_path, ckpts.last_path) if p.exists()]
    if existing:
        raise UserError(
            f"'{existing[0]}' already exists; resume it with --resume {existing[0]} or pick a new run name "
            f"with --override \"exp_name: <new name>\""
        )


def _notice_amp(cfg: TrainConfig, device: torch.device) -> None:
    if cfg.optim.amp and device.type == "cpu" and not cfg.optim.amp_on_cpu:
        print("abr-tune: notice: AMP is off on CPU (set optim.amp_on_cpu: true for bf16 autocast)", file=sys.stderr)


def _say(cfg: TrainConfig, message: str) -> None:
    if cfg.trainer.progress:
        print(message, flush=True)


def _epoch_line(run: Run, metrics: dict[str, float], improved: bool) -> str:
    parts = [f"epoch {run.epoch}/{run.cfg.trainer.max_epochs}", f"train {metrics['epoch/train_loss_avg']:.4f}"]
    if "val/mse_v" in metrics:
        parts.append(f"val/mse_v {metrics['val/mse_v']:.4f}" + (" (best)" if improved else ""))
    if "sample/corr" in metrics:
        parts.append(f"corr {metrics['sample/corr']:.3f}")
        wave = run.cfg.profile.primary
        parts.append(f"{wave}-lat MAE {metrics[wave_metric(wave, 'latency_mae_ms')]:.2f} ms")
    parts.append(f"{metrics['epoch/time_sec']:.1f}s")
    return " | ".join(parts)


@contextlib.contextmanager
def _progress(cfg: TrainConfig, run: Run):
    """A tqdm bar per epoch (loss and ETA) when trainer.progress, else a silent pass-through."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=f"epoch {run.epoch + 1}/{cfg.trainer.max_epochs}", disable=not cfg.trainer.progress,
               leave=False, unit="batch", dynamic_ncols=True)

    def wrap(batches):
        bar.reset(total=len(batches))
        for b in batches:
            yield b
            bar.update()

    wrap.set_postfix = bar.set_postfix
    try:
        yield wrap
    finally:
        bar.close()


def _summary(run: Run, ckpts: CheckpointManager, status: str) -> dict[str, Any]:
    return {
        "status": status,
        "best_val_mse_v": run.best_metric,
        "best_epoch": run.best_epoch,
        "epochs_run": run.epoch,
        "best_checkpoint": str(ckpts.best_path) if ckpts.best_path.exists() else None,
        "last_checkpoint": str(ckpts.last_path) if ckpts.last_path.exists() else None,
        "last_metrics": run.history[-1] if run.history else {},
        "history": run.history,
        "run_dir": str(run.cfg.run_dir),
    }
