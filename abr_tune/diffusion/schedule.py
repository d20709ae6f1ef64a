"""Cosine noise schedule and the v-parameterisation: pure functions of tensors.

Notation follows the papers: `alphas_cumprod` is ᾱ_t, `x_start` is x0, `noise` is ε.
Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models" (cosine
schedule, eq. 17 and §3.2); Salimans & Ho 2022, "Progressive Distillation for Fast
Sampling of Diffusion Models" (v = α_t ε − σ_t x, §4 and appendix D; in the variance
preserving case α_t = √ᾱ_t and σ_t = √(1−ᾱ_t)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def _cosine_betas(num_steps: int, s: float, max_beta: float) -> Tensor:
    # Nichol & Dhariwal eq. 17: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2);
    # §3.2: β_t = 1 − ᾱ_t/ᾱ_{t−1}, clipped to max_beta to avoid the singularity at t = T.
    # Same arithmetic as improved-diffusion's betas_for_alpha_bar, vectorised in float64.
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    grid = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((grid + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


def cosine_alphas_cumprod(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """ᾱ_t of the cosine schedule, float64 (num_steps,): clipped betas, then cumprod."""
    return torch.cumprod(1 - _cosine_betas(num_steps, s, max_beta), dim=0)


@dataclass
class Schedule:
    """A discrete noise schedule: float64 tables indexed by the integer timestep."""

    alphas_cumprod: Tensor  # ᾱ_t, float64 (T,)
    betas: Tensor  # β_t, float64 (T,)
    num_steps: int

    def __post_init__(self) -> None:
        # (√ᾱ_t, √(1−ᾱ_t)) once, in float64 and rounded to float32: every training and DDIM step
        # gathers them, and these are the values a float64 gather + sqrt + cast per call gave.
        tables = (self.alphas_cumprod.sqrt(), (1 - self.alphas_cumprod).sqrt())
        self._sqrt_tables = {torch.float64: tables, torch.float32: tuple(t.float() for t in tables)}

    @classmethod
    def cosine(cls, num_steps: int) -> Schedule:
        """The cosine schedule of Nichol & Dhariwal 2021 (s = 0.008, β ≤ 0.999)."""
        betas = _cosine_betas(num_steps, s=0.008, max_beta=0.999)
        return cls(alphas_cumprod=torch.cumprod(1 - betas, dim=0), betas=betas, num_steps=num_steps)

    def to(self, device: torch.device | str) -> Schedule:
        """The same schedule with its tables on `device` (still float64)."""
        return Schedule(self.alphas_cumprod.to(device), self.betas.to(device), self.num_steps)


def _coefficients(schedule: Schedule, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """(√ᾱ_t, √(1−ᾱ_t)) gathered at t in x's dtype (from the float64 tables for float64 x,
    else the float32 ones), shaped to broadcast over x."""
    tables = schedule._sqrt_tables[torch.float64 if x.dtype == torch.float64 else torch.float32]
    shape = (-1,) + (1,) * (x.ndim - 1)  # (B, 1, 1) for x of shape (B, C, T)
    return tuple(table.to(t.device)[t].to(x.dtype).view(shape) for table in tables)


def q_sample(schedule: Schedule, x_start: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε  (Ho et al. 2020, eq. 4)."""
    a, sigma = _coefficients(schedule, t, x_start)
    return a * x_start + sigma * noise


def v_target(schedule: Schedule, x_start: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """v = √ᾱ_t ε − √(1−ᾱ_t) x0  (Salimans & Ho 2022, §4)."""
    a, sigma = _coefficients(schedule, t, x_start)
    return a * noise - sigma * x_start


def x_start_from_v(schedule: Schedule, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """x0 = √ᾱ_t x_t − √(1−ᾱ_t) v  (Salimans & Ho 2022, appendix D)."""
    a, sigma = _coefficients(schedule, t, x_t)
    return a * x_t - sigma * v


def eps_from_v(schedule: Schedule, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """ε = √(1−ᾱ_t) x_t + √ᾱ_t v  (the same rotation solved for ε; uses ᾱ + (1−ᾱ) = 1)."""
    a, sigma = _coefficients(schedule, t, x_t)
    return sigma * x_t + a * v
