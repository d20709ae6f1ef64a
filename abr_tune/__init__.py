"""abr-tune: train and hyperparameter-search a diffusion generator of ABR waveforms."""

from typing import Any

__all__ = ["train_abr", "load_config", "TrainConfig", "Reporter", "StopRun"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import abr_tune` free of torch start-up cost and side effects.
    if name in ("train_abr", "Reporter", "StopRun"):
        from . import training

        return getattr(training, name)
    if name in ("load_config", "TrainConfig"):
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module 'abr_tune' has no attribute {name!r}")
