"""The resolved base config that every trial of a search rebuilds."""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig


def trial_base(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved base config that trials rebuild: every key but the facts a recordings file states itself
    (its sample rate and condition order, the model's condition width), where the config left them at their
    defaults: written out, they would read as set by the user and contradict the file."""
    out = cfg.to_dict()
    for section, keys, given in (("data", ("sample_rate_hz", "static_order"), cfg.data.set_by_user),
                                 ("model", ("static_dim",), cfg.model.set_by_user)):
        for key in keys:
            if key not in given:
                out[section].pop(key, None)
    return out
