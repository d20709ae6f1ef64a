"""One optimiser step and one epoch of v-prediction diffusion training."""

from __future__ import annotations

import math

import torch

from ..diffusion import diffusion_loss, q_sample, stft_resolutions, v_target, x_start_from_v
from .state import Run
from .tensorboard import RunLogger


def epoch_batches(run: Run) -> list[torch.Tensor]:
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
                           cfg.loss.stft_weight, stft_resolutions(cfg.loss.stft), cfg.loss.stft.eps)
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
    for idx in progress(epoch_batches(run)):
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
