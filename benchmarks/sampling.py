"""Figure 3: classifier-free-guided DDIM, one batched pass (2B) vs two passes (B + B) per step.

The model is configs/cpu.yaml's (eval mode, no grad), 60 DDIM steps, cfg_scale 2. The two-pass
baseline swaps `abr_tune.sampler.guided_v` for the textbook two-call version; everything else
(schedule, DDIM update) is the same code. Batch sizes: 1 (one waveform, interactive) and 32 (the
training's sampling round).
"""

from __future__ import annotations

from unittest import mock

import torch

from abr_tune.diffusion import Schedule
from abr_tune.diffusion import ddim as sampler
from abr_tune.model import ABRTransformer

from .common import CPU_CONFIG, Figure, at_least, config, interleaved, median, paired_ratio, timed

SECTION = "3 guided sampling"
TARGET = 1.6
STEPS, CFG_SCALE = 60, 2.0


def two_pass_guided_v(model, x_t, t, static, cfg_scale):
    """v_u + s (v_c − v_u) from two model calls (the baseline)."""
    v_cond = model(x_t, t, static)
    v_uncond = model(x_t, t, static, torch.ones(x_t.shape[0], dtype=torch.bool, device=x_t.device))
    return v_uncond + cfg_scale * (v_cond - v_uncond)


def sample_rate(model, schedule, static, two_pass: bool) -> float:
    """Samples/s of one guided DDIM run."""
    run = lambda: sampler.ddim_sample(model, schedule, static, steps=STEPS, cfg_scale=CFG_SCALE,  # noqa: E731
                                      generator=torch.Generator().manual_seed(0))
    if two_pass:
        with mock.patch.object(sampler, "guided_v", two_pass_guided_v):
            return static.shape[0] / timed(run)
    return static.shape[0] / timed(run)


def measure(opts) -> list[Figure]:
    torch.set_num_threads(opts.threads)
    cfg = config(CPU_CONFIG, {})
    torch.manual_seed(0)
    model = ABRTransformer(cfg.model).eval()
    with torch.no_grad():
        for block in model.blocks:  # trained FiLM is non-zero: make the condition matter
            block.film.weight.normal_(std=0.1)
    schedule = Schedule.cosine(cfg.diffusion.num_train_steps)
    figures = []
    for batch in (1, 32):
        static = torch.randn(batch, cfg.model.static_dim, generator=torch.Generator().manual_seed(1))
        with mock.patch.object(sampler, "guided_v", two_pass_guided_v):
            two = sampler.ddim_sample(model, schedule, static, steps=STEPS, cfg_scale=CFG_SCALE,
                                      generator=torch.Generator().manual_seed(0))
        one = sampler.ddim_sample(model, schedule, static, steps=STEPS, cfg_scale=CFG_SCALE,
                                  generator=torch.Generator().manual_seed(0))
        runs = interleaved({"batched": lambda s=static: sample_rate(model, schedule, s, False),
                            "two_pass": lambda s=static: sample_rate(model, schedule, s, True)},
                           2 if opts.quick else 3)
        figures.append(at_least(
            SECTION, f"batched / two-pass samples/s, batch {batch}", paired_ratio(runs["batched"], runs["two_pass"]),
            TARGET, batched_samples_per_sec=median(runs["batched"]), two_pass_samples_per_sec=median(runs["two_pass"]),
            max_abs_difference=float((one - two).abs().max()), runs=runs, steps=STEPS, threads=opts.threads))
    return figures
