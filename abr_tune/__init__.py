"""abr-tune: train and hyperparameter-search a diffusion generator of ABR waveforms."""

from typing import Any

__all__ = ["train_abr", "load_config", "TrainConfig"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import abr_tune` free of torch start-up cost and side effects.
    if name == "train_abr":
        from .train import train_abr

        return train_abr
    if name in ("load_config", "TrainConfig"):
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module 'abr_tune' has no attribute {name!r}")
