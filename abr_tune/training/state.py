"""A training run's state (model, EMA, optimiser, schedules, data on the device) and how it is built."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import TrainConfig
from ..data import ABRArrays, Normaliser, prepare_splits
from ..data.fingerprint import fingerprint
from ..diffusion import Schedule
from ..errors import UserError, notice
from ..model import EMA, ABRTransformer, autocast_factory, load_model_weights, resolve_device
from .validation import FixedDraw, SplitTensors


def lr_multiplier(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up for lr_warmup_steps, then cosine or linear decay to min_lr_ratio (or constant)."""
    warmup, floor = cfg.advanced.lr_warmup_steps, cfg.advanced.min_lr_ratio

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.advanced.lr_scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if cfg.advanced.lr_scheduler == "linear":
            return floor + (1 - floor) * (1 - progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier


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
    data_fingerprint: dict[str, Any] | None = None  # what the run trains on; a resume checks it (data.fingerprint)

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
            "data_fingerprint": self.data_fingerprint,
            "signal_unit": self.train.arrays.signal_unit,  # µV, or z for per-recording z-scored data
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_model_weights(self.model, state, self.cfg)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when saved disabled (CPU, bf16): a run moved to fp16 CUDA starts a fresh scale
            self.scaler.load_state_dict(state["scaler"])
        for key in ("epoch", "step", "best_metric", "best_epoch", "bad_validations", "history"):
            setattr(self, key, state[key])
        torch.set_rng_state(state["rng"]["torch"])
        self.follow_config_lr()

    def follow_config_lr(self) -> None:
        """Make the lr this config's: `optim.lr` as the schedule's base, on the schedule for this
        `trainer.max_epochs`, at the current step (the loaded optimiser and scheduler hold the old ones).

        The scheduler is rebuilt through LambdaLR's public constructor at the loaded step (`last_epoch`
        one behind it: the constructor takes the first step); for an unchanged config this gives exactly
        the values the loaded scheduler held.
        """
        lr, step = self.cfg.optim.lr, self.scheduler.last_epoch
        for group in self.optimizer.param_groups:
            group["initial_lr"] = lr
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.scheduler.lr_lambdas,
                                                           last_epoch=step - 1)


def setup_run(cfg: TrainConfig, arrays: ABRArrays | None, resume: dict | None) -> Run:
    device = _device(cfg)
    if cfg.advanced.torch_threads:
        torch.set_num_threads(cfg.advanced.torch_threads)
    torch.manual_seed(cfg.seed)
    splits = prepare_splits(cfg.data, arrays)
    normaliser = Normaliser.from_state_dict(resume["normaliser"]) if resume else splits.normaliser
    _conditions_input(cfg, normaliser, splits.normaliser)
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
    total_steps = steps_per_epoch(len(train), cfg) * cfg.trainer.max_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg, total_steps))
    fp16 = o.amp and o.amp_dtype == "fp16" and device.type == "cuda"
    run = Run(
        cfg=cfg, device=device, model=model, ema=EMA(model, o.ema_decay), optimizer=optimizer,
        scheduler=scheduler, scaler=torch.amp.GradScaler(device.type, enabled=fp16),
        schedule=Schedule.cosine(cfg.diffusion.num_train_steps).to(device), normaliser=normaliser,
        train=train, val=val, autocast=autocast_factory(cfg, device), data_fingerprint=fingerprint(cfg.data),
        val_draw=FixedDraw.make(len(val), cfg.diffusion.num_train_steps, cfg.trainer.val_seed,
                                train.x_start.shape[-1], device),
    )
    if resume:
        run.load_state_dict(resume)
    return run


def _conditions_input(cfg: TrainConfig, normaliser: Normaliser, data: Normaliser) -> None:
    """model.static_dim follows the data's declared conditions; a value the user set that differs is an error,
    and so is data declaring other conditions than the checkpoint a run resumes from."""
    if normaliser.conditions != data.conditions:
        raise UserError(f"the checkpoint was trained on the conditions {normaliser.conditions.summary()}, the data "
                        f"declares {data.conditions.summary()}; resume with the data it was trained on")
    width = normaliser.conditions.input_dim
    if "static_dim" in cfg.model.set_by_user and cfg.model.static_dim != width:
        raise UserError(f"model.static_dim is {cfg.model.static_dim} but the data's conditions "
                        f"({normaliser.conditions.summary()}) make {width} inputs; remove model.static_dim")
    cfg.model.static_dim = width


def _device(cfg: TrainConfig) -> torch.device:
    """`cfg.device`; 'cuda' without a visible GPU falls back to the CPU, as the original pipeline's config
    promised, with a notice, and the config then records what ran (device: cpu)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        notice("device is 'cuda' but no CUDA GPU is visible: training on the CPU (config.yaml records device: cpu)")
        cfg.device = "cpu"
    return resolve_device(cfg.device)


def samples_per_epoch(run: Run) -> int:
    return min(len(run.train), steps_per_epoch(len(run.train), run.cfg) * run.cfg.loader.batch_size)


def steps_per_epoch(n: int, cfg: TrainConfig) -> int:
    bs = cfg.loader.batch_size
    return n // bs if cfg.loader.drop_last else math.ceil(n / bs)
