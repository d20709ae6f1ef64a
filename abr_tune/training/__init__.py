"""Training: the loop (`train_abr`), its state and steps, validation, the callback protocol, TensorBoard."""

from typing import Any

from .callbacks import CHECKPOINT_FILE, Reporter, StopRun

__all__ = ["CHECKPOINT_FILE", "Reporter", "StopRun", "train_abr"]


def __getattr__(name: str) -> Any:
    # train_abr imports torch: the callback protocol stays importable without it (a search plans
    # before any trial needs torch).
    if name == "train_abr":
        from .loop import train_abr

        return train_abr
    raise AttributeError(f"module 'abr_tune.training' has no attribute {name!r}")
