"""Exponential moving average of model weights with warm-up (k-diffusion style, `lerp_`).

Decay at update n (0-based): min(decay, (1 + n) / (10 + n)), so early averages are not
dominated by the random initial weights. Create the EMA after moving the model to its device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


def _tracked(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """Parameters and floating-point buffers, by name."""
    yield from model.named_parameters()
    yield from ((name, b) for name, b in model.named_buffers() if b.is_floating_point())


def warmup_decay(decay: float, num_updates: int) -> float:
    """The decay used by update number `num_updates` (0-based): min(decay, (1 + n) / (10 + n))."""
    return min(decay, (1 + num_updates) / (10 + num_updates))


class EMA:
    """Shadow copies of a model's parameters and float buffers (`shadow`: name -> tensor)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {name: t.detach().clone() for name, t in _tracked(model)}
        self._shadow_list = list(self.shadow.values())  # in _tracked order, for the foreach ops

    def _model_tensors(self, model: nn.Module) -> list[Tensor]:
        """The model's tracked tensors in shadow order (re-read each call: `.to()` replaces buffers)."""
        tensors = [t.detach() for _, t in _tracked(model)]
        if len(tensors) != len(self._shadow_list):
            raise ValueError(f"EMA tracks {len(self._shadow_list)} tensors but the model has {len(tensors)}")
        return tensors

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow <- decay_n * shadow + (1 - decay_n) * weights; call after every optimiser step."""
        weight = 1 - warmup_decay(self.decay, self.num_updates)
        torch._foreach_lerp_(self._shadow_list, self._model_tensors(model), weight)  # one fused call
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's weights with the EMA weights."""
        torch._foreach_copy_(self._model_tensors(model), self._shadow_list)

    @contextmanager
    def swap_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Run a block with the EMA weights in `model`; the raw weights are restored afterwards."""
        raw = [t.clone() for t in self._model_tensors(model)]
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self._model_tensors(model), raw)

    def state_dict(self) -> dict[str, Any]:
        """Shadow tensors and the update count (loadable with torch.load(weights_only=True))."""
        return {"shadow": {name: t.clone() for name, t in self.shadow.items()}, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the names must match this model's."""
        shadow = state["shadow"]
        if shadow.keys() != self.shadow.keys():
            missing, unexpected = self.shadow.keys() - shadow.keys(), shadow.keys() - self.shadow.keys()
            raise ValueError(f"EMA state does not match the model: missing {sorted(missing)}, "
                             f"unexpected {sorted(unexpected)}")
        for name, t in shadow.items():
            self.shadow[name].copy_(t)
        self.num_updates = int(state["num_updates"])
