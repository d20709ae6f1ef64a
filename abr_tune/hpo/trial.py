"""The Ray Tune trial: a thin adapter over train_abr (Ray's function-trainable pattern).

`TuneReporter` turns each epoch into one `tune.report` with a checkpoint and hands
`tune.get_checkpoint()` back to train_abr when Tune restarts or resumes a trial.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional

from ..config import apply_overrides, from_dict
from ..training import StopRun
from .layout import TRIAL_RUN, TRIAL_SUMMARY_FILE
from .results import STOPPED_EARLY
from .space import SearchSpace


class TuneReporter:
    """train_abr's Reporter inside a Tune trial: one `tune.report` per epoch.

    When the scheduler stops the trial, Tune ends the trial's thread with SystemExit from
    inside `tune.report`; the reporter turns that into StopRun so train_abr closes its logs and
    returns its summary, and `stopped` tells run_trial to hand the exit back to Tune.
    """

    def __init__(self) -> None:
        import ray

        self._node_id = ray.get_runtime_context().get_node_id()
        self.stopped = False

    def restore_dir(self) -> Optional[Path]:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        return Path(checkpoint.to_directory()) if checkpoint else None

    def report(self, metrics: dict[str, float], checkpoint_dir: Optional[Path]) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        try:
            tune.report({**metrics, "node_id": self._node_id}, checkpoint=checkpoint)
        except SystemExit:
            self.stopped = True
            raise StopRun(f"{STOPPED_EARLY} at epoch {int(metrics['epoch'])}") from None


def run_trial(config: dict[str, Any], *, space: SearchSpace, arrays: Any = None,
              extra: Optional[dict[str, Any]] = None) -> None:
    """The Tune trainable: Optuna's params (and `extra` overrides, e.g. a confirmation run's seed)
    → a TrainConfig → train_abr in this trial's dir."""
    from ray import tune

    from ..training import train_abr  # torch loads in the trial's worker, not in the driver

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "checkpoint created" line per epoch is noise
    # The worker is reused for the next trial once this one's thread has ended; Tune waits 2 s
    # for that by default and fails the next trial if a stopped one takes longer to close.
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "60")
    trial_dir = Path(tune.get_context().get_trial_dir())
    overrides = {**space.resolve(config), **(extra or {}), **trial_overrides(space, trial_dir)}
    cfg = from_dict(apply_overrides(space.base, overrides))
    reporter = TuneReporter()
    summary = train_abr(cfg, reporter, arrays=arrays)
    (trial_dir / TRIAL_SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str))
    if reporter.stopped:
        sys.exit(0)  # how a stopped trial's thread must end: Tune then reuses this worker


def trial_overrides(space: SearchSpace, trial_dir: Path) -> dict[str, Any]:
    """What every trial sets: its own log dir, the search's epochs, threads = its CPUs, and
    the device Tune reserved (cuda with --gpus-per-trial > 0, else cpu: never an unreserved GPU)."""
    r = space.resources
    return {"log_dir": str(trial_dir), "exp_name": TRIAL_RUN, "device": "cuda" if r.gpus_per_trial > 0 else "cpu",
            "trainer.max_epochs": space.scheduler.max_t, "trainer.progress": False,
            "trainer.keep_last_k": 0,  # Tune keeps the trial's checkpoints; no periodic copies
            "advanced.torch_threads": max(1, math.floor(r.cpus_per_trial)),
            # a sample metric that drives ASHA is measured on its rungs too (the last epoch always samples)
            **({"trainer.sample_epochs": space.sample_epochs()} if space.sample_epochs() else {})}
