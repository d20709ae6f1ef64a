"""Golden values and identities for the cosine schedule, the v-conversions and DDIM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from abr_tune.diffusion import (
    Schedule,
    cosine_alphas_cumprod,
    eps_from_v,
    q_sample,
    v_target,
    x_start_from_v,
)
from abr_tune.diffusion.ddim import ddim_sample, ddim_timesteps, guided_v

T = 1000


def reference_alphas_cumprod(num_steps: int, s: float = 0.008) -> np.ndarray:
    """Closed form ᾱ_i = f(i + 1)/f(0), f(u) = cos²((u/T + s)/(1 + s) π/2); only the last β is clipped."""
    f = np.cos((np.arange(num_steps + 1) / num_steps + s) / (1 + s) * np.pi / 2) ** 2
    alphas_cumprod = f[1:] / f[0]
    alphas_cumprod[-1] = alphas_cumprod[-2] * (1 - 0.999)  # β_{T-1} = 1 - f(T)/f(T-1) = 1 clips to 0.999
    return alphas_cumprod


# ---------------------------------------------------------------- schedule

def test_cosine_schedule_matches_closed_form():
    ours = cosine_alphas_cumprod(T)
    assert ours.dtype == torch.float64 and ours.shape == (T,)
    np.testing.assert_allclose(ours.numpy(), reference_alphas_cumprod(T), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "index, expected",
    [(0, 0.999958715775178), (499, 0.4938435904406382), (998, 2.4287669070348544e-06), (999, 2.4287669070348567e-09)],
)
def test_cosine_schedule_golden_numbers(index, expected):
    assert cosine_alphas_cumprod(T)[index].item() == pytest.approx(expected, rel=0, abs=1e-10)


def test_cosine_schedule_shape_properties():
    schedule = Schedule.cosine(T)
    assert schedule.num_steps == T
    assert torch.all(schedule.alphas_cumprod[1:] < schedule.alphas_cumprod[:-1])
    assert torch.all(schedule.betas <= 0.999) and schedule.betas[-1].item() == pytest.approx(0.999)
    assert schedule.alphas_cumprod[0].item() > 0.9999
    torch.testing.assert_close(schedule.alphas_cumprod, torch.cumprod(1 - schedule.betas, 0), rtol=0, atol=0)
    moved = schedule.to("cpu")
    assert moved.alphas_cumprod.dtype == torch.float64 and moved.num_steps == T


# ---------------------------------------------------------------- x0 <-> eps <-> v

@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    x_start = torch.randn(16, 1, 200, generator=gen)
    noise = torch.randn(16, 1, 200, generator=gen)
    t = torch.tensor([0, 1, 2, 10, 50, 100, 250, 400, 500, 600, 750, 900, 990, 997, 998, 999])
    return Schedule.cosine(T), x_start, noise, t


def test_q_sample_and_v_match_definitions_in_float64(batch):
    schedule, x_start, noise, t = batch
    ab = schedule.alphas_cumprod[t].view(-1, 1, 1)
    x64, n64 = x_start.double(), noise.double()
    torch.testing.assert_close(q_sample(schedule, x64, t, n64), ab.sqrt() * x64 + (1 - ab).sqrt() * n64)
    torch.testing.assert_close(v_target(schedule, x64, t, n64), ab.sqrt() * n64 - (1 - ab).sqrt() * x64)
    assert q_sample(schedule, x_start, t, noise).dtype == torch.float32


def test_v_round_trips_recover_x_start_and_noise(batch):
    schedule, x_start, noise, t = batch
    x_t = q_sample(schedule, x_start, t, noise)
    v = v_target(schedule, x_start, t, noise)
    torch.testing.assert_close(x_start_from_v(schedule, x_t, t, v), x_start, atol=1e-5, rtol=0)
    torch.testing.assert_close(eps_from_v(schedule, x_t, t, v), noise, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- DDIM

class OracleModel(nn.Module):
    """Knows x0, so its v is exact for any x_t: v = (√ᾱ x_t − x0) / √(1−ᾱ)."""

    def __init__(self, schedule: Schedule, x_start: Tensor):
        super().__init__()
        self.schedule, self.x_start = schedule, x_start

    def forward(self, x_t, t, static, null_cond=None):
        ab = self.schedule.alphas_cumprod[t].view(-1, 1, 1)
        return ((ab.sqrt() * x_t.double() - self.x_start.double()) / (1 - ab).sqrt()).float()


class ToyConditionalModel(nn.Module):
    """A deterministic stand-in whose output depends on x_t, t, static and null_cond; counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.null = torch.tensor(-0.7)

    def forward(self, x_t, t, static, null_cond=None):
        self.calls += 1
        cond = static.sum(dim=1)
        if null_cond is not None:
            cond = torch.where(null_cond, self.null, cond)
        return torch.tanh(x_t) * (1 + cond.view(-1, 1, 1)) + 1e-3 * t.view(-1, 1, 1)


def test_ddim_timesteps_are_evenly_spaced_and_descending():
    assert ddim_timesteps(1000, 10).tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert ddim_timesteps(1000, 1000).tolist() == list(range(999, -1, -1))
    assert ddim_timesteps(1000, 1).tolist() == [999]
    steps = ddim_timesteps(1000, 60)
    assert steps[0] == 999 and len(steps) == 60 and set(torch.diff(-steps).tolist()) <= {16, 17}
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_timesteps(1000, 0)


@pytest.mark.parametrize("steps", [1, 7, 60])
def test_ddim_with_exact_v_returns_x_start(steps):
    schedule = Schedule.cosine(T)
    x_start = torch.randn(4, 1, 200, generator=torch.Generator().manual_seed(1))
    out = ddim_sample(OracleModel(schedule, x_start), schedule, torch.zeros(4, 4), steps=steps,
                      generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out, x_start, atol=1e-5, rtol=0)


def test_ddim_eta1_with_exact_v_returns_x_start():
    schedule = Schedule.cosine(T)
    x_start = torch.randn(4, 1, 200, generator=torch.Generator().manual_seed(1))
    out = ddim_sample(OracleModel(schedule, x_start), schedule, torch.zeros(4, 4), steps=20, eta=1.0,
                      generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out, x_start, atol=1e-4, rtol=0)


def test_ddim_single_step_from_given_x_T_is_one_x_start_prediction():
    schedule = Schedule.cosine(T)
    model, static = ToyConditionalModel(), torch.randn(3, 4)
    x_T = torch.randn(3, 1, 200)
    t = torch.full((3,), T - 1)
    expected = x_start_from_v(schedule, x_T, t, model(x_T, t, static))
    torch.testing.assert_close(ddim_sample(model, schedule, static, steps=1, x_T=x_T), expected)


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_is_deterministic_given_the_generator(eta):
    schedule, model, static = Schedule.cosine(T), ToyConditionalModel(), torch.randn(3, 4)

    def sample(seed):
        return ddim_sample(model, schedule, static, steps=8, eta=eta, cfg_scale=2.0,
                           generator=torch.Generator().manual_seed(seed))

    first, second, other = sample(0), sample(0), sample(1)
    assert first.shape == (3, 1, 200) and torch.isfinite(first).all()
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.allclose(first, other)


def test_ddim_eta_changes_the_trajectory():
    schedule, model, static = Schedule.cosine(T), ToyConditionalModel(), torch.randn(3, 4)
    x_T = torch.randn(3, 1, 200)
    deterministic = ddim_sample(model, schedule, static, steps=8, eta=0.0, x_T=x_T)
    stochastic = ddim_sample(model, schedule, static, steps=8, eta=1.0, x_T=x_T,
                             generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(deterministic, stochastic)


def test_ddim_eta_per_step_equals_the_constant_and_noises_only_where_it_is_positive():
    schedule, model, static = Schedule.cosine(T), ToyConditionalModel(), torch.randn(3, 4)
    x_T = torch.randn(3, 1, 200)

    def sample(eta):
        gen = torch.Generator().manual_seed(0)
        return ddim_sample(model, schedule, static, steps=8, eta=eta, x_T=x_T, generator=gen)

    torch.testing.assert_close(sample([0.5] * 7), sample(0.5), rtol=0, atol=0)
    torch.testing.assert_close(sample([0.0] * 7), sample(0.0), rtol=0, atol=0)
    late = sample([0.0] * 4 + [1.0] * 3)  # the shared start decides the first four steps, fresh noise the rest
    assert not torch.allclose(late, sample(0.0)) and not torch.allclose(late, sample(1.0))
    with pytest.raises(ValueError, match="eta has 3 values for 7 DDIM steps"):
        sample([0.0] * 3)


def guidance_inputs():
    gen = torch.Generator().manual_seed(4)
    return torch.randn(3, 1, 200, generator=gen), torch.tensor([5, 500, 999]), torch.randn(3, 4, generator=gen)


def test_guidance_scale_one_is_one_conditional_pass():
    model, x_t, t, static = ToyConditionalModel(), *guidance_inputs()
    v = guided_v(model, x_t, t, static, cfg_scale=1.0)
    assert model.calls == 1
    torch.testing.assert_close(v, model(x_t, t, static), rtol=0, atol=0)


@pytest.mark.parametrize("scale", [0.0, 2.5])
def test_batched_guidance_equals_two_separate_passes(scale):
    model, x_t, t, static = ToyConditionalModel(), *guidance_inputs()
    v = guided_v(model, x_t, t, static, cfg_scale=scale)
    assert model.calls == 1
    v_cond = model(x_t, t, static, torch.zeros(3, dtype=torch.bool))
    v_uncond = model(x_t, t, static, torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(v, v_uncond + scale * (v_cond - v_uncond), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(v_cond, v_uncond)

