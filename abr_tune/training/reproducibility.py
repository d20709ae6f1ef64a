"""`reproducibility.deterministic` and `.benchmark`: torch's global kernel choices for one run, restored after.

Deterministic mode follows PyTorch's reproducibility notes: `torch.use_deterministic_algorithms`
(here warn-only, so an operation without a deterministic kernel warns and names itself instead
of failing mid-run), cuDNN's deterministic convolutions without autotuning, and cuBLAS's
fixed workspace (CUBLAS_WORKSPACE_CONFIG, read when CUDA starts). With the run's seeds, a rerun
then gives the same weights. `benchmark` lets cuDNN time convolution algorithms and keep the
fastest, which may differ between runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from ..config import ReproducibilityConfig


def apply(cfg: ReproducibilityConfig) -> Callable[[], None]:
    """Set torch's flags for `cfg`; returns the function that puts the previous ones back."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = cfg.benchmark and not cfg.deterministic

    def restore() -> None:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]

    return restore
