"""The model: the ABR Transformer, its EMA, building it for a config, and the checkpoint generator."""

from .build import autocast_factory, build_model, load_model_weights, resolve_device
from .ema import EMA
from .generator import GENERATE_BATCH, Generator, generate_uv
from .transformer import ABRTransformer, count_parameters, flops_per_example

__all__ = ["ABRTransformer", "EMA", "GENERATE_BATCH", "Generator", "autocast_factory", "build_model",
           "count_parameters", "flops_per_example", "generate_uv", "load_model_weights", "resolve_device"]
