"""ABRTransformer: shapes, input checks, conditioning paths, gradients, FLOPs, and a tiny overfit."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from abr_tune.config import ModelConfig
from abr_tune.diffusion import Schedule, q_sample, v_target
from abr_tune.model import ABRTransformer, count_parameters, flops_per_example
from abr_tune.model.transformer import Dropout

TINY = dict(d_model=32, n_layers=2, n_heads=4, dropout=0.0)


def make_model(**overrides) -> ABRTransformer:
    torch.manual_seed(0)
    return ABRTransformer(ModelConfig(**{**TINY, **overrides}))


def make_inputs(batch: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x_t = torch.randn(batch, 1, 200, generator=gen)
    t = torch.randint(0, 1000, (batch,), generator=gen)
    static = torch.randn(batch, 4, generator=gen)
    return x_t, t, static


def activate_film(model: ABRTransformer) -> None:
    """Give the zero-initialised FiLM projections non-zero weights, as training would."""
    with torch.no_grad():
        for block in model.blocks:
            block.film.weight.normal_(std=0.1)


@pytest.mark.parametrize("use_conv_module", [True, False])
def test_output_shape(use_conv_module):
    model = make_model(use_conv_module=use_conv_module).eval()
    x_t, t, static = make_inputs()
    out = model(x_t, t, static)
    assert out.shape == (4, 1, 200) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_wrong_length_raises_a_clear_error():
    model = make_model()
    _, t, static = make_inputs()
    with pytest.raises(ValueError, match=r"^ABRTransformer expects \(B, 1, 200\) waveforms, got \(B, 1, 199\)$"):
        model(torch.randn(4, 1, 199), t, static)
    with pytest.raises(ValueError, match=r"got \(4, 200\)"):
        model(torch.randn(4, 200), t, static)
    with pytest.raises(ValueError, match="static of shape"):
        model(torch.randn(4, 1, 200), t, static[:, :3])


def test_film_is_zero_initialised_so_the_model_starts_unconditioned():
    model = make_model().eval()
    x_t, t, static = make_inputs()
    base = model(x_t, t, static)
    torch.testing.assert_close(model(x_t, t.flip(0), static.flip(0)), base, rtol=0, atol=0)
    torch.testing.assert_close(model(x_t, t, static, torch.ones(4, dtype=torch.bool)), base, rtol=0, atol=0)


def test_conditioning_changes_the_output_once_film_is_active():
    model = make_model().eval()
    activate_film(model)
    x_t, t, static = make_inputs()
    base = model(x_t, t, static)
    assert not torch.allclose(model(x_t, t, static + 1.0), base, atol=1e-4)
    assert not torch.allclose(model(x_t, (t + 100) % 1000, static), base, atol=1e-4)


def test_null_condition_replaces_the_static_condition_per_sample():
    model = make_model().eval()
    activate_film(model)
    x_t, t, static = make_inputs()
    null = torch.tensor([True, False, True, False])
    mixed = model(x_t, t, static, null)
    cond = model(x_t, t, static, torch.zeros(4, dtype=torch.bool))
    uncond = model(x_t, t, static, torch.ones(4, dtype=torch.bool))
    torch.testing.assert_close(cond, model(x_t, t, static))
    torch.testing.assert_close(mixed[~null], cond[~null])
    torch.testing.assert_close(mixed[null], uncond[null])
    assert not torch.allclose(cond, uncond, atol=1e-4)
    # With the null condition the static values are ignored.
    torch.testing.assert_close(model(x_t, t, static * 5, torch.ones(4, dtype=torch.bool)), uncond)


def test_gradients_reach_every_parameter():
    model = make_model()
    activate_film(model)
    x_t, t, static = make_inputs()
    null = torch.tensor([True, False, False, False])
    model(x_t, t, static, null).square().mean().backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_dropout_only_in_training():
    model = make_model(dropout=0.5)
    x_t, t, static = make_inputs()
    model.eval()
    torch.testing.assert_close(model(x_t, t, static), model(x_t, t, static), rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(x_t, t, static), model(x_t, t, static))


@pytest.mark.parametrize("overrides", [{}, {"use_conv_module": False, "stem_kernels": [5], "ff_mult": 2}])
def test_flops_per_example_matches_torch_flop_counter(overrides):
    model = make_model(**overrides).eval()
    x_t, t, static = make_inputs(batch=3)
    # The math backend decomposes attention into counted matmuls (the fused CPU kernel is not counted).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x_t, t, static)
    assert flops_per_example(model.cfg) * 3 == counter.get_total_flops()


def test_count_parameters_counts_trainable_parameters():
    model = make_model()
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    model.head.weight.requires_grad_(False)
    assert count_parameters(model) == total - model.head.weight.numel()


def test_tiny_model_overfits_one_batch():
    model = make_model()
    schedule = Schedule.cosine(1000)
    gen = torch.Generator().manual_seed(3)
    x_start = torch.sin(torch.linspace(0, 12.0, 200)).expand(8, 1, 200) * torch.rand(8, 1, 1, generator=gen)
    noise = torch.randn(8, 1, 200, generator=gen)
    t = torch.randint(0, 1000, (8,), generator=gen)
    static = torch.randn(8, 4, generator=gen)
    x_t, v = q_sample(schedule, x_start, t, noise), v_target(schedule, x_start, t, noise)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(model(x_t, t, static), v)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_cpu_dropout_keeps_one_minus_p_and_rescales():
    drop = Dropout(0.1).train()
    torch.manual_seed(0)
    x = torch.ones(1000, 1001)  # odd size: the int16 halves of the last 32-bit draw are cut
    y = drop(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(1 - 3277 / 32768, abs=2e-3)  # p rounded to 1/32768
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 32768 / (32768 - 3277)))
    assert y.mean().item() == pytest.approx(1.0, abs=3e-3)
    torch.manual_seed(0)
    torch.testing.assert_close(drop(x), y, rtol=0, atol=0)  # the global seed decides the mask
    assert drop.eval()(x) is x
