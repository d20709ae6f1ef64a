"""Where a run lives: its run directory and checkpoint directory, checked before anything is written.

A checkpoint belongs to the run whose checkpoint directory holds it (`run_home`): the directory
its own config names, or, for a run moved or copied as a whole (or one whose relative
`log_dir` is read from another working directory), the `<log_dir>/<exp_name>/checkpoints/`
directory it now sits in. A resume writes into that run only (`abr_tune.training.resume`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig
from ..errors import UserError
from ..paths import unwritable


@dataclass(frozen=True)
class RunHome:
    """The run a checkpoint belongs to, as absolute paths."""

    run_dir: Path
    checkpoint_dir: Path
    exp_name: str

    @classmethod
    def of(cls, cfg: TrainConfig) -> RunHome:
        return cls(cfg.run_dir.resolve(), cfg.checkpoint_dir.resolve(), cfg.exp_name)


def run_home(checkpoint: Path, saved: TrainConfig) -> RunHome:
    """The run `checkpoint` (trained with config `saved`) belongs to; a UserError when it sits outside any."""
    here = Path(checkpoint).resolve().parent
    home = RunHome.of(saved)
    if here == home.checkpoint_dir:
        return home
    if saved.trainer.ckpt_dir is None and here.name == "checkpoints" and here.parent.name == saved.exp_name:
        return RunHome(here.parent, here, saved.exp_name)  # the run directory was moved or copied whole
    raise UserError(
        f"'{checkpoint}' is not in its run's checkpoint directory '{saved.checkpoint_dir}' (nor in a "
        f"'<log_dir>/{saved.exp_name}/checkpoints/' directory of a moved run), so it is unknown which run a "
        f"resume would continue; put it back into '{saved.checkpoint_dir}' to continue that run"
    )


def check_writable(cfg: TrainConfig) -> None:
    """Refuse a run directory or checkpoint directory that cannot be created and written (a file in the
    way, a read-only directory or file system) before any work starts or anything is written."""
    ckpt_key = "trainer.ckpt_dir" if cfg.trainer.ckpt_dir else "log_dir"
    places = [("log_dir", cfg.log_dir, cfg.run_dir),
              (ckpt_key, cfg.trainer.ckpt_dir or cfg.log_dir, cfg.checkpoint_dir)]
    for key, value, target in places:
        blocked = unwritable(target)
        if blocked:
            raise UserError(f"{key} '{value}' cannot hold the run: '{blocked[0]}' {blocked[1]}; "
                            f"set {key} to a writable directory")
