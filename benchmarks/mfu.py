"""Figure 2: CPU MFU at the full-size model: training FLOP/s ÷ this machine's fp32 matmul peak.

Training FLOP/s = 3 × flops_per_example × samples/s of the bare training step (forward +
backward ≈ 3 forwards) of configs/train.yaml's model (d_model 256, 6 layers, 8 heads,
dropout 0.1) at batch 32. The peak is torch.mm on 2048² fp32 matrices (best of 3 calls),
same process, same threads, alternated with the training steps. Each is clocked in wall and
in CPU seconds (see common.clocked); the figure is the median of per-round ratios. Details
add the dropout-free model and bf16 autocast (AMX on CPUs that have it) beside fp32.
"""

from __future__ import annotations

import tempfile

import torch

from abr_tune.model import flops_per_example

from .common import FULL_CONFIG, BareLoop, Figure, at_least, clocked, config, interleaved, median, paired_ratio

SECTION = "2 CPU MFU"
TARGET = 0.5
PEAK_N = 2048


def matmul_flops(n: int = PEAK_N, dtype: torch.dtype = torch.float32, calls: int = 3) -> tuple[float, float]:
    """(wall, CPU) FLOP/s of torch.mm on n×n matrices, best of `calls`: the peak, not the average."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    clocks = [clocked(lambda: torch.mm(a, b)) for _ in range(calls)]
    return 2 * n**3 / min(c[0] for c in clocks), 2 * n**3 / min(c[1] for c in clocks)


def measure(opts) -> list[Figure]:
    torch.set_num_threads(opts.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config(FULL_CONFIG, {"log_dir": tmp, "device": "cpu"})
        no_dropout = config(FULL_CONFIG, {"log_dir": tmp, "device": "cpu", "model.dropout": 0.0})
    flops = 3 * flops_per_example(cfg.model) * cfg.loader.batch_size  # per training step
    loops = {"fp32": BareLoop(cfg), "fp32 dropout 0": BareLoop(no_dropout),
             "bf16 autocast": BareLoop(cfg, amp=torch.bfloat16)}
    for loop in loops.values():
        loop.step()  # warm-up (the first step also creates AdamW's state)
        loop.step()

    def rate(loop: BareLoop) -> tuple[float, float]:
        wall, cpu = clocked(loop.step)  # one full-size step is seconds long on one core
        return flops / wall, flops / cpu

    runs = interleaved({"peak": matmul_flops, **{k: (lambda lp=lp: rate(lp)) for k, lp in loops.items()}},
                       2 if opts.quick else 4)
    wall = {k: [r[0] for r in v] for k, v in runs.items()}
    cpu = {k: [r[1] for r in v] for k, v in runs.items()}
    peak_bf16 = matmul_flops(dtype=torch.bfloat16)[0]
    details = dict(
        mfu_dropout_0_wall=paired_ratio(wall["fp32 dropout 0"], wall["peak"]),
        mfu_dropout_0_cpu=paired_ratio(cpu["fp32 dropout 0"], cpu["peak"]),
        bf16_autocast_over_fp32_peak_cpu=paired_ratio(cpu["bf16 autocast"], cpu["peak"]),
        bf16_autocast_flop_per_s=median(wall["bf16 autocast"]), peak_bf16_mm_flop_per_s=peak_bf16,
        bf16_autocast_mfu_vs_bf16_peak=median(wall["bf16 autocast"]) / peak_bf16,
        flops_per_step=flops, batch_size=cfg.loader.batch_size, threads=opts.threads, wall=wall, cpu=cpu)
    return [
        at_least(SECTION, "full-size model FLOP/s / fp32 mm peak (wall)", paired_ratio(wall["fp32"], wall["peak"]),
                 TARGET, model_flop_per_s=median(wall["fp32"]), peak_fp32_flop_per_s=median(wall["peak"]), **details),
        at_least(SECTION, "full-size model FLOP/s / fp32 mm peak (CPU time)", paired_ratio(cpu["fp32"], cpu["peak"]),
                 TARGET, model_flop_per_s=median(cpu["fp32"]), peak_fp32_flop_per_s=median(cpu["peak"])),
    ]
