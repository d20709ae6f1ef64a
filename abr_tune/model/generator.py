"""One generator for every caller: a checkpoint plus conditions in raw units → µV waveforms.

`Generator.from_checkpoint` rebuilds the model from the checkpoint's own config (nanoGPT's
`sample.py` does the same), loads the EMA weights, the data normaliser and the diffusion
schedule; `generate` runs DDIM in bounded batches. sample, evaluate, the search report and
retrain all use it; training calls `generate_uv` on its live (EMA-swapped) model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import GENERATE_KEYS, load_checkpoint, require
from ..config import TrainConfig, from_dict
from ..data import Normaliser
from ..diffusion import Schedule, ddim_sample
from ..errors import UserError
from .build import autocast_factory, build_model, resolve_device

GENERATE_BATCH = 512  # waveforms per DDIM call: bounds memory whatever the number asked for
def _ema_model(cfg: TrainConfig, state: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """The model with the checkpoint's EMA weights; EMA state that does not fit the model is a UserError."""
    try:
        return build_model(cfg, state, device, use_ema=True)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError) as err:  # EMA.load_state_dict: missing shadow, other names
        raise UserError(f"the checkpoint's ema does not fit its model ({type(err).__name__}: {err}); "
                        "pass a checkpoint written by abr-tune's training, e.g. a run's _best.pt") from None


@torch.no_grad()
def generate_uv(model, schedule: Schedule, static: torch.Tensor, cfg: TrainConfig, normaliser: Normaliser,
                seed: int, autocast, cfg_scale: float | None = None, x_T: torch.Tensor | None = None) -> np.ndarray:
    """DDIM samples for normalised `static` (B, 4), decoded to µV as (B, T) numpy; from `x_T` (B, 1, T) when
    given, else from noise seeded with `seed`."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=static.device).manual_seed(seed)
    scale = cfg.diffusion.cfg_scale if cfg_scale is None else cfg_scale
    with autocast():
        x0 = ddim_sample(model, schedule, static, steps=cfg.diffusion.sample_steps, eta=cfg.diffusion.ddim_eta,
                         cfg_scale=scale, generator=gen, x_T=x_T)
    model.train(was_training)
    return normaliser.decode_signals(x0.float().squeeze(1).cpu().numpy())


@dataclass
class Generator:
    """A checkpoint's EMA weights ready for DDIM: raw conditions in, µV waveforms out."""

    cfg: TrainConfig
    model: torch.nn.Module
    normaliser: Normaliser
    schedule: Schedule
    autocast: Callable[[], Any]
    device: torch.device
    epoch: int = 0
    signal_unit: str = "µV"  # "z" for a model trained on per-recording z-scored signals

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | dict[str, Any], *, config: TrainConfig | None = None,
                        sample_steps: int | None = None, eta: float | None = None,
                        device: str | None = None) -> Generator:
        """From a checkpoint path (or its loaded state); `config` defaults to the checkpoint's own.

        `sample_steps` (capped at the training steps) and `eta` override the config's DDIM settings;
        `device` its device (e.g. "auto" to use this machine's GPU whatever the run used).
        """
        if isinstance(checkpoint, dict):
            state = checkpoint
            require(state, GENERATE_KEYS)
        else:
            state = load_checkpoint(checkpoint, need=GENERATE_KEYS)
        cfg = config or from_dict(state["config"])
        if sample_steps is not None:
            cfg.diffusion.sample_steps = min(sample_steps, cfg.diffusion.num_train_steps)
        if eta is not None:
            cfg.diffusion.ddim_eta = eta
        if device is not None:
            cfg.device = device
        normaliser = Normaliser.from_state_dict(state["normaliser"])
        where = resolve_device(cfg.device)
        schedule = Schedule.cosine(cfg.diffusion.num_train_steps).to(where)
        return cls(cfg, _ema_model(cfg, state, where), normaliser, schedule, autocast_factory(cfg, where), where,
                   int(state.get("epoch", 0)), str(state.get("signal_unit", "µV")))

    def encode(self, static_raw: np.ndarray, labels: np.ndarray | None = None) -> torch.Tensor:
        """Raw (M, K) numeric conditions and (M, C) categories → the model's normalised inputs on its device."""
        encoded = self.normaliser.encode_conditions(static_raw, labels)
        return torch.as_tensor(encoded, dtype=torch.float32, device=self.device)

    def generate(self, static_raw: np.ndarray, repeats: int = 1, cfg_scale: float | None = None,
                 seed: int = 0, progress: Callable[[int], None] | None = None,
                 labels: np.ndarray | None = None, x_T: np.ndarray | None = None) -> np.ndarray:
        """(K, M, T) µV: K = `repeats` samples per raw (M, K) condition (with its (M, C) categorical `labels`
        when the model declares any); the same noise at every CFG scale. `x_T` ((K, M, T), normalised units)
        sets each sample's starting noise instead (e.g. `series_noise`).

        Rows are repeat-major (row k*M + m is repeat k of condition m) and generated in batches of
        GENERATE_BATCH, batch i seeded with `seed + i`; `progress(n)` is called after each batch of n.
        Only the float32 result and one batch's model tensors are held: memory grows with K*M*T*4 bytes.
        """
        tiled = self.encode(static_raw, labels).repeat(repeats, 1)
        noise = None if x_T is None else torch.as_tensor(np.asarray(x_T, dtype=np.float32)).reshape(len(tiled), 1, -1)
        out: np.ndarray | None = None
        for i, lo in enumerate(range(0, len(tiled), GENERATE_BATCH)):
            batch = tiled[lo : lo + GENERATE_BATCH]
            start = None if noise is None else noise[lo : lo + GENERATE_BATCH].to(self.device)
            uv = generate_uv(self.model, self.schedule, batch, self.cfg, self.normaliser, seed + i, self.autocast,
                             cfg_scale=cfg_scale, x_T=start)
            if out is None:  # filled in place: no list of batches and no concatenated copy
                out = np.empty((len(tiled), uv.shape[-1]), dtype=np.float32)
            out[lo : lo + len(batch)] = uv
            if progress is not None:
                progress(len(batch))
        return out.reshape(repeats, len(static_raw), -1)


def series_noise(series: np.ndarray, repeats: int, length: int, rho: float, seed: int = 0) -> np.ndarray:
    """(K, M, T) DDIM starting noise for M rows in level series (`series`: one key per row), K draws each:
    N(0, I) per row, and rows of one series in one draw correlated `rho` (0: independent, 1: the same noise):
    √rho · z_series + √(1 − rho) · z_row. A subject's records differ in level but share the animal; a
    generator that knows conditions, not subjects, shares nothing across a series without this."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    _, index = np.unique(np.asarray(series).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((repeats, index.max() + 1, length))[:, index.ravel()]
    own = rng.standard_normal((repeats, len(index), length))
    return (np.sqrt(rho) * shared + np.sqrt(1.0 - rho) * own).astype(np.float32)
