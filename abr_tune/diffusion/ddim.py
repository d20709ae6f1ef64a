"""DDIM sampling of a v-predicting model with classifier-free guidance.

Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models" (their α_t is our ᾱ_t);
Ho & Salimans 2021, "Classifier-Free Diffusion Guidance" (guidance, applied here to v,
which is linear in ε and x0 for a fixed x_t).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .schedule import Schedule, eps_from_v, x_start_from_v


def ddim_timesteps(num_train_steps: int, steps: int) -> Tensor:
    """`steps` evenly spaced training timesteps, descending from num_train_steps - 1 ("trailing" spacing)."""
    if not 1 <= steps <= num_train_steps:
        raise ValueError(f"DDIM steps must be in [1, {num_train_steps}], got {steps}")
    return (torch.arange(steps, 0, -1, dtype=torch.float64) * num_train_steps / steps).round().long() - 1


def guided_v(model: nn.Module, x_t: Tensor, t: Tensor, static: Tensor, cfg_scale: float) -> Tensor:
    """v = v_u + s (v_c − v_u), conditional and null halves in one batched pass; plain conditional at s = 1."""
    if cfg_scale == 1.0:
        return model(x_t, t, static).to(x_t.dtype)
    batch = x_t.shape[0]
    null = torch.arange(2 * batch, device=x_t.device) >= batch  # (2B,): first half cond, second null
    v = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([static, static]), null).to(x_t.dtype)
    v_cond, v_uncond = v.chunk(2)
    return v_uncond + cfg_scale * (v_cond - v_uncond)


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    # Draw on the generator's device so a CPU generator gives the same noise on any device.
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def _ddim_step(x: Tensor, x_start: Tensor, eps: Tensor, alpha: Tensor, alpha_prev: Tensor, eta: float,
               generator: torch.Generator | None) -> Tensor:
    """One DDIM update from timestep t (ᾱ = alpha) to the previous sampled timestep (alpha_prev)."""
    # Eq. 16: σ_t(η) = η √((1 − α_{t−1}) / (1 − α_t)) √(1 − α_t / α_{t−1}).
    sigma = eta * ((1 - alpha_prev) / (1 - alpha) * (1 - alpha / alpha_prev)).sqrt()
    # Eq. 12: x_{t−1} = √α_{t−1} x̂0 + √(1 − α_{t−1} − σ_t²) ε̂ + σ_t z.
    direction = (1 - alpha_prev - sigma**2).clamp(min=0).sqrt()
    x_prev = alpha_prev.sqrt().to(x.dtype) * x_start + direction.to(x.dtype) * eps
    if eta > 0:
        x_prev = x_prev + sigma.to(x.dtype) * _randn(tuple(x.shape), generator, x)
    return x_prev


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    schedule: Schedule,
    static: Tensor,
    *,
    steps: int,
    eta: float | Sequence[float] = 0.0,
    cfg_scale: float = 1.0,
    generator: torch.Generator | None = None,
    x_T: Tensor | None = None,
    length: int = 200,
) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12) from x_T ~ N(0, I) to x̂0 (B, 1, length); eta = 0 is deterministic.
    `eta` is one value for every step or one per step (`len(ddim_timesteps(...)) - 1` values): each step's
    σ_t(η) keeps the marginals of eq. 12, so any per-step mix is a valid sampler.

    The caller picks the weights and the mode (EMA weights, model.eval()).
    """
    batch = static.shape[0]
    x = x_T if x_T is not None else _randn((batch, 1, length), generator, static.float())
    alphas_cumprod = schedule.alphas_cumprod.to(x.device)
    timesteps = ddim_timesteps(schedule.num_steps, steps).tolist()
    etas = [float(eta)] * (len(timesteps) - 1) if isinstance(eta, (int, float)) else [float(e) for e in eta]
    if len(etas) != len(timesteps) - 1:
        raise ValueError(f"eta has {len(etas)} values for {len(timesteps) - 1} DDIM steps")
    for i, step in enumerate(timesteps):
        t = torch.full((batch,), step, device=x.device, dtype=torch.long)
        v = guided_v(model, x, t, static, cfg_scale)
        x_start = x_start_from_v(schedule, x, t, v)  # "predicted x0" of eq. 12
        if i + 1 < len(timesteps):
            eps = eps_from_v(schedule, x, t, v)  # ε_θ(x_t) of eq. 12
            x = _ddim_step(x, x_start, eps, alphas_cumprod[step], alphas_cumprod[timesteps[i + 1]], etas[i],
                           generator)
    return x_start  # the last step returns x̂0
