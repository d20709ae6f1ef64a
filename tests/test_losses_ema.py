"""STFT loss and loss composition (weight applied once); EMA warm-up, averaging, swap, state."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from abr_tune.config import StftConfig
from abr_tune.diffusion.losses import diffusion_loss, multi_resolution_stft_loss, stft_resolutions
from abr_tune.model.ema import EMA, warmup_decay

DEFAULT_RESOLUTIONS = [(64, 16, 64), (32, 8, 32), (128, 32, 128)]


def signals(seed: int, batch: int = 4):
    return torch.randn(batch, 1, 200, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- losses

def test_default_resolutions_are_exact():
    assert stft_resolutions(StftConfig()) == DEFAULT_RESOLUTIONS
    assert stft_resolutions(StftConfig(multi_resolution=False)) == [(64, 16, 64)]
    odd = StftConfig(n_fft=32, hop_length=8, win_length=24)
    assert stft_resolutions(odd) == [(32, 8, 24), (16, 4, 12), (64, 16, 48)]


def test_stft_loss_is_zero_for_identical_inputs_and_positive_otherwise():
    x, y = signals(0), signals(1)
    assert multi_resolution_stft_loss(x, x.clone(), DEFAULT_RESOLUTIONS).item() == 0.0
    assert multi_resolution_stft_loss(x, y, DEFAULT_RESOLUTIONS).item() > 0.1
    assert multi_resolution_stft_loss(x, 1.01 * x, DEFAULT_RESOLUTIONS).item() > 0.0


def test_stft_loss_is_the_mean_over_resolutions_in_float32():
    x, y = signals(0), signals(1)
    singles = [multi_resolution_stft_loss(x, y, [r]) for r in DEFAULT_RESOLUTIONS]
    torch.testing.assert_close(multi_resolution_stft_loss(x, y, DEFAULT_RESOLUTIONS), sum(singles) / 3)
    half = multi_resolution_stft_loss(x.to(torch.bfloat16), y.to(torch.bfloat16), DEFAULT_RESOLUTIONS)
    assert half.dtype == torch.float32


def test_stft_loss_golden_single_resolution():
    # Written out by hand: |STFT| with a hann window, L1 on magnitude plus L1 on log-magnitude.
    x, y = signals(2, batch=2), signals(3, batch=2)
    window = torch.hann_window(64)
    mag = [torch.stft(s.flatten(0, 1), 64, 16, 64, window, return_complex=True).abs() for s in (x, y)]
    expected = (mag[0] - mag[1]).abs().mean() + ((mag[0] + 1e-5).log() - (mag[1] + 1e-5).log()).abs().mean()
    torch.testing.assert_close(multi_resolution_stft_loss(x, y, [(64, 16, 64)]), expected)


def test_total_is_mse_plus_weight_times_stft_applied_once():
    v_pred, v, x_pred, x = signals(0), signals(1), signals(2), signals(3)
    terms = diffusion_loss(v_pred, v, x_pred, x, 0.15, DEFAULT_RESOLUTIONS)
    torch.testing.assert_close(terms.mse_v, ((v_pred - v) ** 2).mean())
    torch.testing.assert_close(terms.stft, multi_resolution_stft_loss(x_pred, x, DEFAULT_RESOLUTIONS))
    assert terms.total.item() == pytest.approx(terms.mse_v.item() + 0.15 * terms.stft.item(), rel=1e-6)


def test_zero_stft_weight_skips_the_stft(monkeypatch):
    import abr_tune.diffusion.losses as losses

    def forbidden(*args, **kwargs):
        raise AssertionError("STFT computed with stft_weight == 0")

    monkeypatch.setattr(losses, "multi_resolution_stft_loss", forbidden)
    v_pred, v = signals(0), signals(1)
    terms = diffusion_loss(v_pred, v, signals(2), signals(3), 0.0, DEFAULT_RESOLUTIONS)
    assert terms.stft.item() == 0.0 and terms.total is terms.mse_v


def test_loss_gradient_flows_to_both_predictions():
    v_pred, x_pred = signals(0).requires_grad_(), signals(2).requires_grad_()
    diffusion_loss(v_pred, signals(1), x_pred, signals(3), 0.15, DEFAULT_RESOLUTIONS).total.backward()
    assert v_pred.grad.abs().sum() > 0 and x_pred.grad.abs().sum() > 0


# ---------------------------------------------------------------- EMA

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)  # float buffers (running stats) and an int buffer


def set_weights(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def test_warmup_decay_numbers():
    assert warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert warmup_decay(0.999, 1) == pytest.approx(2 / 11)
    assert warmup_decay(0.999, 90) == pytest.approx(0.91)
    assert warmup_decay(0.999, 8990) == pytest.approx(0.999)
    assert warmup_decay(0.999, 10**6) == 0.999
    assert warmup_decay(0.5, 5) == pytest.approx(0.4)
    assert warmup_decay(0.5, 10) == 0.5


def test_shadow_tracks_parameters_and_float_buffers_only():
    model = Tiny()
    ema = EMA(model, decay=0.999)
    assert set(ema.shadow) == {"linear.weight", "linear.bias", "norm.weight", "norm.bias",
                               "norm.running_mean", "norm.running_var"}


def test_updates_follow_the_warmed_up_lerp():
    model = Tiny()
    set_weights(model, 0.0)
    ema = EMA(model, decay=0.9)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 4.0, -3.0]):
        set_weights(model, value)
        ema.update(model)
        decay = min(0.9, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * value
    assert ema.num_updates == 4
    torch.testing.assert_close(ema.shadow["linear.weight"], torch.full((2, 3), expected))
    # By hand: 0.9, then 2/11*0.9 + 9/11*2 = 1.8, then 0.25*1.8 + 0.75*4 = 3.45, then 4/13*3.45 - 9/13*3.
    assert expected == pytest.approx(-13.2 / 13, abs=1e-12)


def test_swap_into_uses_ema_weights_and_restores_raw_weights():
    model = Tiny()
    set_weights(model, 1.0)
    ema = EMA(model, decay=0.5)
    set_weights(model, 3.0)
    ema.update(model)  # decay_0 = min(0.5, 0.1) = 0.1 -> shadow = 0.1 * 1 + 0.9 * 3 = 2.8
    with ema.swap_into(model) as swapped:
        assert swapped is model
        torch.testing.assert_close(model.linear.weight, torch.full((2, 3), 2.8))
    torch.testing.assert_close(model.linear.weight, torch.full((2, 3), 3.0))
    with pytest.raises(RuntimeError), ema.swap_into(model):
        raise RuntimeError("inside")
    torch.testing.assert_close(model.linear.weight, torch.full((2, 3), 3.0))
    ema.copy_to(model)
    torch.testing.assert_close(model.linear.weight, torch.full((2, 3), 2.8))


def test_state_dict_round_trip_through_weights_only_load():
    model = Tiny()
    ema = EMA(model, decay=0.99)
    set_weights(model, 2.0)
    ema.update(model)
    ema.update(model)
    buffer = io.BytesIO()
    torch.save(ema.state_dict(), buffer)
    buffer.seek(0)
    restored = EMA(Tiny(), decay=0.99)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.num_updates == 2
    for name, t in ema.shadow.items():
        torch.testing.assert_close(restored.shadow[name], t, rtol=0, atol=0)
    with pytest.raises(ValueError, match="missing"):
        restored.load_state_dict({"shadow": {}, "num_updates": 0})
