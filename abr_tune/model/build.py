"""Build a model for a config or a checkpoint: device, autocast, weights (raw or EMA)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from ..config import TrainConfig, from_dict
from ..errors import UserError
from .ema import EMA
from .transformer import ABRTransformer


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device is 'cuda' but no CUDA GPU is visible; use device: auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_factory(cfg: TrainConfig, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16/fp16 autocast on CUDA when optim.amp; on CPU only with optim.amp_on_cpu (bf16)."""
    use = cfg.optim.amp and (device.type == "cuda" or cfg.optim.amp_on_cpu)
    dtype = torch.float16 if cfg.optim.amp_dtype == "fp16" and device.type == "cuda" else torch.bfloat16
    return lambda: torch.autocast(device.type, dtype=dtype, enabled=use)


def build_model(cfg: TrainConfig, state: dict | None, device: torch.device, *, use_ema: bool = False):
    """An ABRTransformer on `device`, with raw (or EMA) weights from `state` when given."""
    model = ABRTransformer(cfg.model).to(device)
    if state is not None:
        load_model_weights(model, state, cfg)
        if use_ema:
            ema = EMA(model, cfg.optim.ema_decay)
            ema.load_state_dict(state["ema"])
            ema.copy_to(model)
    return model


def load_model_weights(model: torch.nn.Module, state: dict, cfg: TrainConfig) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        saved = from_dict(state["config"]).model
        raise UserError(
            f"checkpoint was trained with a different model ({saved}) than the config asks for "
            f"({cfg.model}); use the checkpoint's own config or a matching model section"
        ) from None
