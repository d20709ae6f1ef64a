"""Upper bounds on the model sizes a search may propose.

A range such as `model.n_layers: {low: 1, high: 1e20}` is a valid config at every point, and the
first trial that draws a large value grows its worker until the machine's OOM killer stops it
(~10 GB a worker was seen). A searched size is therefore bounded: at these limits the ABR
Transformer has about a billion parameters, far beyond the CPU and GPU configs (configs/*.yaml,
d_model 128-256, 4-6 layers) and beyond what 200-sample waveforms can use.
"""

from __future__ import annotations

from ..config import TrainConfig
from ..errors import UserError

MODEL_LIMITS = {"model.d_model": 1024, "model.n_layers": 48, "model.n_heads": 64, "model.ff_mult": 8,
                "model.conv_kernel_size": 199}


def check_sizes(cfg: TrainConfig, searched: set[str]) -> None:
    """Refuse a proposed config whose searched model size exceeds its limit."""
    for key, limit in MODEL_LIMITS.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if key in searched and value > limit:
            raise UserError(f"{key}={value} exceeds {limit}, the largest a search may propose (a model that "
                            "large exhausts a worker's memory); lower the range's high")
