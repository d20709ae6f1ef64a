"""train_abr(config, reporter=None): the full training pipeline, and `python -m abr_tune.train`.

The loop knows nothing about who drives it (minGPT's trainer/callback split): a caller such
as Ray Tune receives each epoch's metrics and checkpoint through a `Reporter`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import CheckpointManager, load_checkpoint, save_atomic
from .config import TrainConfig, config_from_raw, from_dict, load_config
from .data import ABRArrays, Normaliser, prepare_splits
from .diffusion import Schedule, q_sample, v_target, x_start_from_v
from .ema import EMA
from .errors import CliParser, UserError, cli_entry
from .evaluation import FixedDraw, SplitTensors, evaluate_checkpoint, mse_v, pick_reference_indices, sample_round
from .losses import diffusion_loss, stft_resolutions
from .model import ABRTransformer
from .reporting import CHECKPOINT_FILE, Reporter, StopRun
from .tb_logging import RunLogger

__all__ = ["train_abr", "evaluate_checkpoint"]


# ---------------------------------------------------------------- building blocks

def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device is 'cuda' but no CUDA GPU is visible; use device: auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_factory(cfg: TrainConfig, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16/fp16 autocast on CUDA when optim.amp; on CPU only with optim.amp_on_cpu (bf16)."""
    use = cfg.optim.amp and (device.type == "cuda" or cfg.optim.amp_on_cpu)
    dtype = torch.float16 if cfg.optim.amp_dtype == "fp16" and device.type == "cuda" else torch.bfloat16
    return lambda: torch.autocast(device.type, dtype=dtype, enabled=use)


def build_model(cfg: TrainConfig, state: dict | None, device: torch.device, *, use_ema: bool = False):
    """An ABRTransformer on `device`, with raw (or EMA) weights from `state` when given."""
    model = ABRTransformer(cfg.model).to(device)
    if state is not None:
        _load_model_weights(model, state, cfg)
        if use_ema:
            ema = EMA(model, cfg.optim.ema_decay)
            ema.load_state_dict(state["ema"])
            ema.copy_to(model)
    return model


def _load_model_weights(model: torch.nn.Module, state: dict, cfg: TrainConfig) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        saved = from_dict(state["config"]).model
        raise UserError(
            f"checkpoint was trained with a different model ({saved}) than the config asks for "
            f"({cfg.model}); use the checkpoint's own config or a matching model section"
        ) from None


def lr_multiplier(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up for lr_warmup_steps, then cosine decay to min_lr_ratio (or constant)."""
    warmup, floor = cfg.advanced.lr_warmup_steps, cfg.advanced.min_lr_ratio

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.advanced.lr_scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier


# ---------------------------------------------------------------- the run's state

@dataclass
class Run:
    """Everything a training run holds; saved whole in each checkpoint."""

    cfg: TrainConfig
    device: torch.device
    model: ABRTransformer
    ema: EMA
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    schedule: Schedule
    normaliser: Normaliser
    train: SplitTensors
    val: SplitTensors
    val_draw: FixedDraw
    autocast: Callable[[], contextlib.AbstractContextManager]
    epoch: int = 0
    step: int = 0
    best_metric: float = math.inf
    best_epoch: int = 0
    bad_validations: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_validations": self.bad_validations,
            "history": self.history,
            "normaliser": self.normaliser.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "config": self.cfg.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _load_model_weights(self.model, state, self.cfg)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        for key in ("epoch", "step", "best_metric", "best_epoch", "bad_validations", "history"):
            setattr(self, key, state[key])
        torch.set_rng_state(state["rng"]["torch"])


def _setup(cfg: TrainConfig, arrays: ABRArrays | None, resume: dict | None) -> Run:
    device = resolve_device(cfg.device)
    if cfg.advanced.torch_threads:
        torch.set_num_threads(cfg.advanced.torch_threads)
    torch.manual_seed(cfg.seed)
    splits = prepare_splits(cfg.data, arrays)
    normaliser = Normaliser.from_state_dict(resume["normaliser"]) if resume else splits.normaliser
    train = SplitTensors.build(splits.train, normaliser, device)
    val = SplitTensors.build(splits.val, normaliser, device)
    if len(train) < cfg.loader.batch_size and cfg.loader.drop_last:
        raise UserError(
            f"the train split has {len(train)} recordings, fewer than loader.batch_size={cfg.loader.batch_size}; "
            "lower the batch size or set loader.drop_last: false"
        )
    model = ABRTransformer(cfg.model).to(device)
    o = cfg.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    steps_per_epoch = _steps_per_epoch(len(train), cfg)
    total_steps = steps_per_epoch * cfg.trainer.max_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg, total_steps))
    fp16 = o.amp and o.amp_dtype == "fp16" and device.type == "cuda"
    run = Run(
        cfg=cfg, device=device, model=model, ema=EMA(model, o.ema_decay), optimizer=optimizer,
        scheduler=scheduler, scaler=torch.amp.GradScaler(device.type, enabled=fp16),
        schedule=Schedule.cosine(cfg.diffusion.num_train_steps).to(device), normaliser=normaliser,
        train=train, val=val, autocast=autocast_factory(cfg, device),
        val_draw=FixedDraw.make(len(val), cfg.diffusion.num_train_steps, cfg.trainer.val_seed,
                                train.x_start.shape[-1], device),
    )
    if resume:
        run.load_state_dict(resume)
    return run


def _samples_per_epoch(run: Run) -> int:
    return min(len(run.train), _steps_per_epoch(len(run.train), run.cfg) * run.cfg.loader.batch_size)


def _steps_per_epoch(n: int, cfg: TrainConfig) -> int:
    bs = cfg.loader.batch_size
    return n // bs if cfg.loader.drop_last else math.ceil(n / bs)


# ---------------------------------------------------------------- one epoch

def _epoch_batches(run: Run) -> list[torch.Tensor]:
    """Index batches for this epoch; seeded by (seed, epoch) so a resumed run sees the same order."""
    n, bs = len(run.train), run.cfg.loader.batch_size
    gen = torch.Generator().manual_seed(run.cfg.seed * 1_000_003 + run.epoch)
    order = torch.randperm(n, generator=gen) if run.cfg.loader.shuffle else torch.arange(n)
    batches = list(order.split(bs))
    if run.cfg.loader.drop_last and batches and len(batches[-1]) < bs:
        batches.pop()
    return batches


def train_step(run: Run, x_start: torch.Tensor, static: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One optimiser step of v-prediction diffusion with per-sample CFG dropout; returns detached losses."""
    cfg, b = run.cfg, x_start.shape[0]
    t = torch.randint(0, run.schedule.num_steps, (b,), generator=gen, device=run.device)
    noise = torch.randn(x_start.shape, generator=gen, device=run.device)
    null_cond = torch.rand(b, generator=gen, device=run.device) < cfg.advanced.cfg_dropout_prob  # per sample
    x_t = q_sample(run.schedule, x_start, t, noise)
    with run.autocast():
        v_pred = run.model(x_t, t, static, null_cond).float()
    x_start_pred = x_start_from_v(run.schedule, x_t, t, v_pred)
    terms = diffusion_loss(v_pred, v_target(run.schedule, x_start, t, noise), x_start_pred, x_start,
                           cfg.loss.stft_weight, stft_resolutions(cfg.loss.stft))
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(terms.total).backward()
    run.scaler.unscale_(run.optimizer)
    params = run.model.parameters()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.ema.update(run.model)
    run.step += 1
    return {"total": terms.total.detach(), "mse_v": terms.mse_v.detach(), "stft": terms.stft.detach(),
            "grad_norm": grad_norm.detach()}


class Diverged(Exception):
    """The loss became non-finite."""


def train_epoch(run: Run, logger: RunLogger, progress) -> float:
    """Train one epoch; returns the mean total loss. Raises Diverged on a non-finite loss."""
    gen = torch.Generator(device=run.device).manual_seed(run.cfg.seed * 7_919 + run.epoch)
    torch.manual_seed(run.cfg.seed * 104_729 + run.epoch)  # dropout: same stream on resume
    run.model.train()
    total, count = torch.zeros((), device=run.device), 0
    for idx in progress(_epoch_batches(run)):
        idx = idx.to(run.device)
        losses = train_step(run, run.train.x_start[idx], run.train.static[idx], gen)
        total += losses["total"]
        count += 1
        if run.step % run.cfg.trainer.log_every_steps == 0:
            values = {k: float(v) for k, v in losses.items()}
            if not math.isfinite(values["total"]):
                raise Diverged
            logger.step_scalars(run.step, values, run.scheduler.get_last_lr()[0])
            progress.set_postfix(loss=f"{values['total']:.4f}")
    mean = float(total) / max(1, count)
    if not math.isfinite(mean):
        raise Diverged
    return mean


# ---------------------------------------------------------------- the loop

def train_abr(config: TrainConfig | dict, reporter: Reporter | None = None, *,
              arrays: ABRArrays | None = None, resume_from: str | Path | None = None) -> dict[str, Any]:
    """Train the ABR diffusion model; return a summary (best val/mse_v, best epoch, checkpoint paths, status)."""
    cfg = config if isinstance(config, TrainConfig) else from_dict(config)
    resume_state = _resume_state(reporter, resume_from)
    ckpts = CheckpointManager(cfg.checkpoint_dir, cfg.exp_name, cfg.trainer.keep_last_k)
    if resume_state is None and reporter is None:
        _refuse_to_overwrite(ckpts)
    run = _setup(cfg, arrays, resume_state)
    _notice_amp(cfg, run.device)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    logger = RunLogger(cfg.run_dir, purge_step=run.step + 1 if resume_state else None)
    sample_idx = pick_reference_indices(run.val.arrays, max(cfg.viz.num_samples, 32), cfg.trainer.val_seed)
    status = "completed"
    try:
        status = _loop(run, ckpts, logger, reporter, sample_idx)
    except StopRun as stop:  # after the last epoch, a stop changes nothing: the run completed
        done = run.epoch >= cfg.trainer.max_epochs
        status = "completed" if done else str(stop) or f"stopped by the caller at epoch {run.epoch}"
    except KeyboardInterrupt:
        status = "interrupted"
        _say(cfg, f"interrupted during epoch {run.epoch + 1}; last checkpoint: {ckpts.last_path}\n"
                  f"resume with: python -m abr_tune.train --resume {ckpts.last_path}")
    finally:
        logger.close()
    return _summary(run, ckpts, status)


def _loop(run: Run, ckpts: CheckpointManager, logger: RunLogger, reporter: Reporter | None, sample_idx) -> str:
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
                   "epoch/samples_per_sec": _samples_per_epoch(run) / train_time}
        improved = _validate(run, metrics)
        if run.epoch % cfg.trainer.sample_every_epochs == 0 or run.epoch == cfg.trainer.max_epochs:
            _sample(run, logger, sample_idx, metrics)
        metrics["epoch/time_sec"] = time.perf_counter() - started
        run.history.append(metrics)
        logger.epoch_scalars(run.epoch, run.step, metrics)
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
    if value < run.best_metric:
        run.best_metric, run.best_epoch, run.bad_validations = value, run.epoch, 0
        return True
    run.bad_validations += 1
    return False


def _sample(run: Run, logger: RunLogger, sample_idx, metrics: dict[str, float]) -> None:
    with run.ema.swap_into(run.model):
        sampled, generated = sample_round(run.model, run.schedule, run.val, sample_idx, run.cfg, run.normaliser,
                                          run.autocast)
    metrics.update(sampled)
    shown = np.linspace(0, len(sample_idx) - 1, min(run.cfg.viz.num_samples, len(sample_idx))).round().astype(int)
    logger.sample_figures(run.epoch, generated[shown], run.val.arrays.subset(sample_idx[shown]), run.cfg)


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

def _resume_state(reporter: Reporter | None, resume_from: str | Path | None) -> dict | None:
    if resume_from is not None:
        return load_checkpoint(resume_from)
    restore = reporter.restore_dir() if reporter is not None else None
    return load_checkpoint(Path(restore) / CHECKPOINT_FILE) if restore else None


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
        parts.append(f"V-lat MAE {metrics['sample/wave_v_latency_mae_ms']:.2f} ms")
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


# ---------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = CliParser(
        prog="python -m abr_tune.train",
        description="Train the ABR diffusion model (EMA, AMP, DDIM samples, TensorBoard, checkpoints).",
        epilog='example: python -m abr_tune.train --config configs/cpu.yaml --override "optim.lr: 3e-4"',
    )
    p.add_argument("--config", help="YAML train config (default: built-in defaults = configs/train.yaml)")
    p.add_argument("--override",
                   help='comma-separated "key: value" pairs, e.g. "optim.lr: 1e-4, trainer.max_epochs: 300"')
    p.add_argument("--resume", metavar="CKPT",
                   help="continue from a checkpoint (_last.pt); uses its config unless --config is given")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.resume and not args.config:  # continue with the checkpoint's own config
        cfg = config_from_raw(load_checkpoint(args.resume)["config"], args.override)
    else:
        cfg = load_config(args.config, args.override)
    print(f"abr-tune: training '{cfg.exp_name}' -> {cfg.run_dir} (tensorboard --logdir {cfg.log_dir})")
    summary = train_abr(cfg, resume_from=args.resume)
    print(f"abr-tune: {summary['status']}; best val/mse_v {summary['best_val_mse_v']:.5f} at epoch "
          f"{summary['best_epoch']}; best checkpoint: {summary['best_checkpoint']}")
    return 130 if summary["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
