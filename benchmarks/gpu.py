"""GPU section (runs only when torch.cuda.is_available(); skipped cleanly otherwise).

- AMP: bf16-autocast training step vs fp32 (full-size model, batch 32), samples/s ratio.
- MFU: bf16 training FLOP/s ÷ this card's measured bf16 matmul peak (torch.mm, 8192²).
- Guided sampling on the GPU: batched CFG vs two passes at batch 32, 60 steps (the case the
  ≥ 1.6× target of figure 3 is about: a GPU is latency-bound at this size).
- Trials per GPU: 4 trials with --gpus-per-trial 0.25 (4 side by side) vs 1 (one at a time),
  trials/hour, by running the search CLI on the CPU config's model moved to the GPU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import torch

from abr_tune.diffusion import Schedule
from abr_tune.diffusion import ddim as sampler
from abr_tune.model import ABRTransformer, flops_per_example

from .common import (
    CPU_CONFIG,
    FULL_CONFIG,
    BareLoop,
    Figure,
    at_least,
    config,
    interleaved,
    median,
    paired_ratio,
    reported,
    skipped,
    timed,
)
from .sampling import CFG_SCALE, STEPS, two_pass_guided_v

SECTION = "GPU"
DEVICE = "cuda"


def measure(opts) -> list[Figure]:
    if not torch.cuda.is_available():
        return [skipped(SECTION, "GPU figures", "no CUDA device visible")]
    name = torch.cuda.get_device_name(0)
    return _amp_and_mfu(opts, name) + [_guided_sampling(opts, name)] + _trials_per_gpu(opts, name)


def _bf16_peak(n: int = 8192) -> float:
    """bf16 torch.mm FLOP/s on n×n matrices, best of 3 (the card's practical peak)."""
    a, b = (torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16) for _ in range(2))
    torch.mm(a, b)
    return max(2 * n**3 / timed(lambda: torch.mm(a, b), 10, sync=True) for _ in range(3))


def _amp_and_mfu(opts, card: str) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config(FULL_CONFIG, {"log_dir": tmp, "device": DEVICE})
    loops = {"fp32": BareLoop(cfg, device=DEVICE), "bf16": BareLoop(cfg, device=DEVICE, amp=torch.bfloat16)}
    steps = 5 if opts.quick else 20
    for loop in loops.values():
        loop.samples_per_sec(3)  # warm-up: kernels, AdamW state
    runs = interleaved({k: (lambda lp=lp: lp.samples_per_sec(steps)) for k, lp in loops.items()}, 5)
    peak = _bf16_peak()
    flops = 3 * flops_per_example(cfg.model) * median(runs["bf16"])
    return [
        reported(SECTION, "AMP bf16 / fp32 training samples/s (full model, batch 32)",
                 paired_ratio(runs["bf16"], runs["fp32"]), "x", card=card, runs=runs),
        reported(SECTION, "bf16 training FLOP/s / measured bf16 mm peak", flops / peak, "", card=card,
                 model_flop_per_s=flops, peak_bf16_flop_per_s=peak, batch_size=cfg.loader.batch_size),
    ]


def _guided_sampling(opts, card: str) -> Figure:
    cfg = config(CPU_CONFIG, {"device": DEVICE})
    torch.manual_seed(0)
    model = ABRTransformer(cfg.model).to(DEVICE).eval()
    schedule = Schedule.cosine(cfg.diffusion.num_train_steps).to(DEVICE)
    static = torch.randn(32, cfg.model.static_dim, device=DEVICE)

    def rate(two_pass: bool) -> float:
        run = lambda: sampler.ddim_sample(model, schedule, static, steps=STEPS, cfg_scale=CFG_SCALE)  # noqa: E731
        with mock.patch.object(sampler, "guided_v", two_pass_guided_v if two_pass else sampler.guided_v):
            run()
            return 32 / timed(run, 1, sync=True)

    runs = interleaved({"batched": lambda: rate(False), "two_pass": lambda: rate(True)}, 3 if opts.quick else 5)
    return at_least(SECTION, "guided sampling batched / two-pass, batch 32", paired_ratio(runs["batched"],
                    runs["two_pass"]), 1.6, card=card, runs=runs)


def _trials_per_gpu(opts, card: str) -> list[Figure]:
    from .search_overhead import _space, run_search

    max_t = 2 if opts.quick else 4
    with tempfile.TemporaryDirectory(prefix="abr_bench_gpu_") as tmp:
        rates = {}
        for name, gpus in (("quarter", 0.25), ("whole", 1.0)):
            space = _space(4, max_t, max_t, {"device": "auto", "data.synthetic.n_subjects": 120,
                                             "trainer.sample_every_epochs": max_t},
                           {"optim.lr": {"dist": "loguniform", "low": 3e-4, "high": 3e-3}})
            space.update(max_concurrent=4, resources={"cpus_per_trial": 1, "gpus_per_trial": gpus})
            rates[name] = 4 / run_search(space, Path(tmp), name)["wall"] * 3600
    return [reported(SECTION, "trials/hour: 4 x 0.25 GPU / 1 x 1 GPU", rates["quarter"] / rates["whole"], "x",
                     card=card, trials_per_hour=rates, epochs_per_trial=max_t)]
