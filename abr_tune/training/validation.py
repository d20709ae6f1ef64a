"""Validation and sampling with the EMA weights: `val/mse_v` on a fixed draw, DDIM sample metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data import ABRArrays, Normaliser, pick_reference_indices, prepare_splits
from ..diffusion import Schedule, q_sample, v_target
from ..fidelity.metrics import realism, reference_latencies, sample_metrics, split_truth
from ..model import Generator, generate_uv


@dataclass
class SplitTensors:
    """One split on the training device: normalised (N, 1, T) signals and (N, static_dim) conditions."""

    arrays: ABRArrays
    x_start: torch.Tensor
    static: torch.Tensor

    @classmethod
    def build(cls, arrays: ABRArrays, normaliser: Normaliser, device: torch.device) -> SplitTensors:
        x = torch.as_tensor(normaliser.encode_signals(arrays.signals), dtype=torch.float32)
        s = torch.as_tensor(normaliser.encode_conditions(*arrays.inputs_for(normaliser.conditions)),
                            dtype=torch.float32)
        return cls(arrays, x.unsqueeze(1).to(device), s.to(device))

    def __len__(self) -> int:
        return len(self.arrays)


@dataclass
class FixedDraw:
    """A seeded (t, noise) per example so every epoch and every trial scores the same problem."""

    t: torch.Tensor
    noise: torch.Tensor

    @classmethod
    def make(cls, n: int, num_steps: int, seed: int, length: int, device: torch.device) -> FixedDraw:
        gen = torch.Generator().manual_seed(seed)
        t = torch.randint(0, num_steps, (n,), generator=gen)
        noise = torch.randn(n, 1, length, generator=gen)
        return cls(t.to(device), noise.to(device))


@torch.no_grad()
def mse_v(model, schedule: Schedule, split: SplitTensors, draw: FixedDraw, batch_size: int, autocast) -> float:
    """Mean v-prediction MSE over the split on the fixed draw (model in eval mode)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for lo in range(0, len(split), batch_size):
        x0 = split.x_start[lo : lo + batch_size]
        t, noise = draw.t[lo : lo + batch_size], draw.noise[lo : lo + batch_size]
        x_t = q_sample(schedule, x0, t, noise)
        with autocast():
            v_pred = model(x_t, t, split.static[lo : lo + batch_size])
        total += float(((v_pred.float() - v_target(schedule, x0, t, noise)) ** 2).sum())
    model.train(was_training)
    return total / (len(split) * split.x_start.shape[-1])


def sample_round(model, schedule: Schedule, split: SplitTensors, idx: np.ndarray, cfg: TrainConfig,
                 normaliser: Normaliser, autocast, cfg_scale: float | None = None, seed: int | None = None
                 ) -> tuple[dict[str, float], np.ndarray]:
    """Generate for the conditions at `idx` (at `cfg_scale`, default diffusion.cfg_scale; sampling noise
    from `seed`, default trainer.val_seed); return sample metrics and the generated waveforms (data unit)."""
    static = split.static[torch.as_tensor(idx, device=split.static.device)]
    seed = cfg.trainer.val_seed if seed is None else seed
    generated = generate_uv(model, schedule, static, cfg, normaliser, seed, autocast, cfg_scale)
    reference, profile, sr = split.arrays.signals[idx], cfg.profile, cfg.data.effective_rate_hz
    ref_latency = reference_latencies(reference, split.arrays.v_latency_ms[idx], sr, profile)
    truth = split.arrays.response_present if split.arrays.response_present is not None else \
        split_truth(split.arrays, sr, profile)  # a mouse file without marks: its level series' agreement
    present = None if truth is None else truth[idx]
    metrics = sample_metrics(generated, reference, ref_latency, sr, response_present=present, profile=profile)
    realistic = realism(reference, generated, split.arrays.subset(idx), sr)
    metrics["sample/c2st_acc"] = realistic["c2st_acc"]
    return metrics, generated


def evaluate_checkpoint(checkpoint_path: str | Path, *, split: str = "test", config: TrainConfig | None = None,
                        num_examples: int = 64, arrays: ABRArrays | None = None) -> dict[str, Any]:
    """Score a checkpoint's EMA weights on a split: `<split>/mse_v` and DDIM sample metrics."""
    gen = Generator.from_checkpoint(checkpoint_path, config=config)
    cfg, device = gen.cfg, gen.device
    data = SplitTensors.build(getattr(prepare_splits(cfg.data, arrays), split), gen.normaliser, device)
    draw = FixedDraw.make(len(data), cfg.diffusion.num_train_steps, cfg.trainer.val_seed, data.x_start.shape[-1],
                          device)
    metrics = {f"{split}/mse_v": mse_v(gen.model, gen.schedule, data, draw, 4 * cfg.loader.batch_size, gen.autocast)}
    idx = pick_reference_indices(data.arrays, num_examples, cfg.trainer.val_seed)
    sampled, _ = sample_round(gen.model, gen.schedule, data, idx, cfg, gen.normaliser, gen.autocast)
    metrics.update(sampled)
    return metrics
