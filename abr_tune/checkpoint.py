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


def remove_partial_saves(directory: Path) -> list[Path]:
    """Delete the temp files of saves a kill cut short (`.<name>.<random>.tmp`); a resume calls it, its run
    being the only writer of its checkpoint directory. Returns what it deleted."""
    removed = [p for p in Path(directory).glob(".*.pt.*.tmp") if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def remove_partial_saves_under(root: Path) -> list[Path]:
    """`remove_partial_saves` in every directory under `root`: a finished search's trials, where
    ASHA stopping a trial mid-save leaves that save's temp file and no run of the trial follows."""
    removed: list[Path] = []
    for directory in sorted({p.parent for p in Path(root).rglob(".*.pt.*.tmp")}):
        removed += remove_partial_saves(directory)
    return removed


# What each use of a checkpoint reads: continuing its run needs everything `Run.state_dict` writes;
# generating from it (sample, evaluate, a search report) needs the EMA weights and the normaliser.
RESUME_KEYS = ("model", "ema", "optimizer", "scheduler", "scaler", "epoch", "step", "best_metric", "best_epoch",
               "bad_validations", "history", "normaliser", "rng", "config")
GENERATE_KEYS = ("model", "ema", "normaliser", "config")


def load_checkpoint(path: str | Path, need: tuple[str, ...] = ("model", "config")) -> dict[str, Any]:
    """Load a checkpoint on CPU with `weights_only=True`; a bad file, or one without the entries
    in `need` (e.g. RESUME_KEYS, GENERATE_KEYS), is a UserError naming what is missing."""
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
    if not isinstance(state, dict) or "model" not in state or not isinstance(state.get("config"), dict):
        raise UserError(f"'{path}' is not an abr-tune checkpoint (no model/config inside)")
    require(state, need, f"checkpoint '{path}'")
    return state


def require(state: dict[str, Any], need: tuple[str, ...], source: str = "the checkpoint") -> None:
    """A UserError naming the entries of `need` that `state` lacks or holds malformed."""
    missing = [key for key in need if key not in state]
    malformed = [key for key in need if key in state and not _well_formed(key, state[key])]
    if missing or malformed:
        problems = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has a malformed {', '.join(malformed)}"] if malformed else [])
        raise UserError(
            f"{source} {' and '.join(problems)} (a training checkpoint holds {', '.join(RESUME_KEYS)}); "
            "use a _last.pt, _best.pt or periodic checkpoint written by abr-tune training"
        )
    if need == GENERATE_KEYS:  # generating from NaN weights writes NaN waveforms and scores them
        bad = [name for name, t in state["ema"].get("shadow", {}).items()
               if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            raise UserError(f"{source} has non-finite EMA weights ({len(bad)} tensors, e.g. {bad[0]}): its run "
                            "diverged before it was saved; generate from an earlier checkpoint of the run (its "
                            "_best.pt or a periodic one)")


_COUNTS = ("epoch", "step", "best_epoch", "bad_validations")


def _well_formed(key: str, value: Any) -> bool:
    """The kind of value `Run.state_dict` writes under `key` (a hand-edited file may hold anything)."""
    if key in _COUNTS:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if key == "best_metric":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, list) if key == "history" else isinstance(value, dict)


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
        # Listed and matched by regex, not globbed: an exp_name such as "run[1]" is a glob pattern.
        pattern = re.compile(re.escape(self.exp_name) + r"_epoch(\d{4,})\.pt")
        if not self.directory.is_dir():
            return []
        found = {p: pattern.fullmatch(p.name) for p in self.directory.iterdir()}
        return sorted((p for p, m in found.items() if m), key=lambda p: int(found[p][1]))  # epoch 10000 > 9999

    def save_periodic(self, state: dict[str, Any], epoch: int) -> Path:
        path = save_atomic(state, self.periodic_path(epoch))
        for old in self.periodic()[: max(0, len(self.periodic()) - self.keep_last_k)]:
            old.unlink(missing_ok=True)
        return path
