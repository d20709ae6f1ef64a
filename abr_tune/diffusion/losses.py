"""Training losses: MSE on v plus a multi-resolution STFT loss on x̂0.

The STFT loss follows Yamamoto et al. 2020 (Parallel WaveGAN, §2.3) with an L1 spectral
magnitude term in place of spectral convergence: mean over resolutions of
L1(|S_pred|, |S_tgt|) + L1(log(|S_pred| + eps), log(|S_tgt| + eps)).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import StftConfig

LOG_EPS = StftConfig.eps  # loss.stft.eps: keeps log|S| finite in silent bins; signals are standardised (~unit scale)

Resolution = tuple[int, int, int]  # (n_fft, hop_length, win_length)


def stft_resolutions(cfg: StftConfig) -> list[Resolution]:
    """The base (n_fft, hop, win) and, with multi_resolution, its half (hop, win >= 1) and its double."""
    n, hop, win = cfg.n_fft, cfg.hop_length, cfg.win_length
    resolutions = [(n, hop, win)]
    if cfg.multi_resolution:
        resolutions += [(n // 2, max(1, hop // 2), max(1, win // 2)), (2 * n, 2 * hop, 2 * win)]
    return resolutions


@functools.lru_cache(maxsize=32)
def _hann_window(win: int, device: torch.device) -> Tensor:
    return torch.hann_window(win, device=device)  # built once per (length, device), not per call


def _magnitude(x: Tensor, n_fft: int, hop: int, win: int) -> Tensor:
    window = _hann_window(win, x.device)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, return_complex=True)
    return spec.abs()  # (B*C, F, frames)


def multi_resolution_stft_loss(pred: Tensor, target: Tensor, resolutions: list[Resolution],
                               eps: float = LOG_EPS) -> Tensor:
    """Mean over resolutions of L1 on |STFT| + L1 on log(|STFT| + eps) (hann window, float32). Inputs (B, C, T)."""
    pred, target = pred.float().flatten(0, 1), target.float().flatten(0, 1)  # (B*C, T)
    total = pred.new_zeros(())
    for n_fft, hop, win in resolutions:
        mag_pred, mag_tgt = _magnitude(pred, n_fft, hop, win), _magnitude(target, n_fft, hop, win)
        total = total + F.l1_loss(mag_pred, mag_tgt)
        total = total + F.l1_loss(torch.log(mag_pred + eps), torch.log(mag_tgt + eps))
    return total / len(resolutions)


@dataclass
class LossTerms:
    total: Tensor  # mse_v + stft_weight * stft
    mse_v: Tensor
    stft: Tensor  # unweighted; 0 when stft_weight is 0


def diffusion_loss(
    v_pred: Tensor,
    v: Tensor,
    x_start_pred: Tensor,
    x_start: Tensor,
    stft_weight: float,
    resolutions: list[Resolution],
    eps: float = LOG_EPS,
) -> LossTerms:
    """MSE(v̂, v) + stft_weight × STFT(x̂0, x0), the weight applied once; no STFT work when the weight is 0."""
    mse_v = F.mse_loss(v_pred.float(), v.float())
    if stft_weight == 0:
        return LossTerms(total=mse_v, mse_v=mse_v, stft=mse_v.new_zeros(()))
    stft = multi_resolution_stft_loss(x_start_pred, x_start, resolutions, eps)
    return LossTerms(total=mse_v + stft_weight * stft, mse_v=mse_v, stft=stft)
