"""Resuming a run: which run it continues, and which config keys may change on the way.

A resume continues the run its checkpoint belongs to (`placement.run_home`) or refuses; it
never writes into another run. Keys in CHANGEABLE say how long and how visibly the run trains,
and take effect for real: `optim.lr` sets the optimiser's lr and the LR schedule's base, and a
new `trainer.max_epochs` recomputes the LR schedule (warm-up, then its decay) for the new length
(`Run.follow_config_lr`). Every other key fixes what the checkpoint's weights, optimiser
moments, normaliser and validation draw mean (model shape, data, diffusion, loss, seed, batch
size, AdamW's other settings, ...): changing one is refused naming the key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..checkpoint import RESUME_KEYS, load_checkpoint, remove_partial_saves
from ..config import TrainConfig, config_from_raw, diff, from_dict
from ..data.fingerprint import check_same_data
from ..errors import UserError
from .callbacks import CHECKPOINT_FILE, Reporter
from .placement import RunHome, run_home

# A key not listed here is refused when it changes: a new key is safe until someone decides otherwise.
CHANGEABLE = (
    "trainer.max_epochs", "optim.lr", "trainer.early_stop_patience", "trainer.early_stop_min_delta",
    "trainer.validate_every_epochs", "trainer.sample_every_epochs", "trainer.sample_epochs",
    "trainer.save_every_epochs", "trainer.log_every_steps", "trainer.keep_last_k", "trainer.progress",
    "advanced.val_sample_cfg_scales",
    "viz.plot_spectrogram", "viz.max_spectrogram_plots", "viz.figsize", "logging.log_parameter_histograms",
    "advanced.torch_threads", "device", "reproducibility.deterministic", "reproducibility.benchmark",
)
# Where the run is (checked as a whole by the placement rule, not key by key) and where it continues from.
NOT_COMPARED = ("log_dir", "exp_name", "trainer.ckpt_dir", "trainer.resume")


def config_for_resume(checkpoint: str | Path, overrides: str | dict | None = None) -> TrainConfig:
    """The checkpoint's own config, placed in the run directory the checkpoint sits in now, plus `overrides`."""
    state = load_checkpoint(checkpoint, need=RESUME_KEYS)
    raw = copy.deepcopy(state["config"])
    saved = from_dict(raw)
    home = run_home(Path(checkpoint), saved)
    if home != RunHome.of(saved):  # moved or copied whole: continue where it is now
        raw["log_dir"] = str(home.run_dir.parent)
    return config_from_raw(raw, overrides)


def load_resume_state(cfg: TrainConfig, reporter: Reporter | None, resume_from: str | Path | None) -> dict | None:
    """The checkpoint state to continue from (None: a fresh run), after every check a resume needs."""
    if resume_from is not None:
        state = load_checkpoint(resume_from, need=RESUME_KEYS)
        saved = from_dict(state["config"])
        _check_same_run(cfg, Path(resume_from), saved)
        _check_changes(cfg, saved)
        _check_epochs_left(cfg, Path(resume_from), state)
        check_same_data(state.get("data_fingerprint"), cfg.data, f"'{resume_from}'",
                        "start a new run on the new data (another exp_name, without --resume)")
        remove_partial_saves(Path(resume_from).parent)
        return state
    restore = reporter.restore_dir() if reporter is not None else None
    if not restore:
        return None
    # A caller's restore (Tune's trial checkpoint) is placed by the caller: only the keys are checked.
    state = load_checkpoint(Path(restore) / CHECKPOINT_FILE, need=RESUME_KEYS)
    _check_changes(cfg, from_dict(state["config"]))
    return state


def _check_same_run(cfg: TrainConfig, checkpoint: Path, saved: TrainConfig) -> None:
    home, target = run_home(checkpoint, saved), RunHome.of(cfg)
    if target != home:
        raise UserError(
            f"'{checkpoint}' belongs to the run '{home.exp_name}' in '{home.run_dir}' (checkpoints in "
            f"'{home.checkpoint_dir}'), but the config puts the run '{target.exp_name}' in '{target.run_dir}' "
            f"(checkpoints in '{target.checkpoint_dir}'); a resume continues its own run and never writes into "
            f"another: resume with the checkpoint's own config (--resume {checkpoint} without --config), or "
            "start the other run without --resume"
        )


def _check_changes(cfg: TrainConfig, saved: TrainConfig) -> None:
    changed = {k: v for k, v in diff(cfg, saved).items() if k not in CHANGEABLE and k not in NOT_COMPARED}
    if changed:
        shown = ", ".join(f"{k} {_show(old)} -> {_show(new)}" for k, (old, new) in changed.items())
        raise UserError(
            f"cannot change {', '.join(changed)} on resume ({shown}): the checkpoint was trained with the first "
            "value(s), and a resume may change only how long and how visibly the run trains (the keys docs/training.md "
            "lists under 'Training on its own': trainer.max_epochs, optim.lr, early stopping, how often to validate, "
            "sample, save and log, ...); start a new run (another exp_name, no --resume) to train with the others"
        )


def _check_epochs_left(cfg: TrainConfig, checkpoint: Path, state: dict[str, Any]) -> None:
    done = int(state["epoch"])
    if done >= cfg.trainer.max_epochs:
        raise UserError(
            f"'{checkpoint}' has already trained {done} epochs and trainer.max_epochs is {cfg.trainer.max_epochs}, "
            f"so there is nothing left to train; to train further, resume with --override "
            f"\"trainer.max_epochs: <more than {done}>\""
        )


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
