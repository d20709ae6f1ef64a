"""Checkpoints: atomic writes, safe loads (`weights_only=True`), best/last/periodic retention."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import UserError


def save_atomic(state: dict[str, Any], path: Path) -> Path:
    """Write `state` to `path` via a temp file + fsync + rename: a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on CPU with `weights_only=True`; a bad file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: '{path}'; pass the path of a .pt file written by abr-tune")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, disallowed global...
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise UserError(
            f"checkpoint '{path}' is corrupt, truncated or not an abr-tune checkpoint ({reason}); "
            "resume from another checkpoint (e.g. the _best.pt or a periodic one beside it)"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"'{path}' is not an abr-tune checkpoint (no model/config inside)")
    return state


class CheckpointManager:
    """Writes `<dir>/<exp>_best.pt`, `_last.pt` and `_epoch<NNNN>.pt`, keeping the last k periodic."""

    def __init__(self, directory: Path, exp_name: str, keep_last_k: int):
        self.directory = Path(directory)
        self.exp_name = exp_name
        self.keep_last_k = keep_last_k

    @property
    def best_path(self) -> Path:
        return self.directory / f"{self.exp_name}_best.pt"

    @property
    def last_path(self) -> Path:
        return self.directory / f"{self.exp_name}_last.pt"

    def periodic_path(self, epoch: int) -> Path:
        return self.directory / f"{self.exp_name}_epoch{epoch:04d}.pt"

    def periodic(self) -> list[Path]:
        pattern = re.compile(re.escape(self.exp_name) + r"_epoch(\d{4,})\.pt$")
        found = [p for p in self.directory.glob(f"{self.exp_name}_epoch*.pt") if pattern.match(p.name)]
        return sorted(found)

    def save_periodic(self, state: dict[str, Any], epoch: int) -> Path:
        path = save_atomic(state, self.periodic_path(epoch))
        for old in self.periodic()[: max(0, len(self.periodic()) - self.keep_last_k)]:
            old.unlink(missing_ok=True)
        return path
