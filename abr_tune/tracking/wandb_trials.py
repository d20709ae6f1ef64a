"""Each Tune trial of a search as a W&B run, logged from the search's driver process through Tune's
public `LoggerCallback`.

Ray's own `WandbLoggerCallback` logs each trial from a Ray actor that it kills as soon as the
trial's `wandb.finish` returns; offline, that lost the last trial's whole run now and then (its
`.wandb` file left empty). Here every run lives in the driver (`reinit="create_new"`: several at
once); the run id is Tune's trial id, so a resumed search continues a trial's run.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.logger import LoggerCallback


class WandbTrialRuns(LoggerCallback):
    """A W&B run per trial in `project`, grouped by the search: the trial's config, each numeric
    result stepped by epoch; exit code 1 when the trial failed or the search stopped mid-trial."""

    def __init__(self, project: str, group: str, directory: str, mode: str, tags: list[str]):
        self.project, self.group, self.directory, self.mode, self.tags = project, group, directory, mode, list(tags)
        self.runs: dict[str, Any] = {}  # Tune trial id -> wandb Run

    def __getstate__(self) -> dict[str, Any]:  # Tune saves its callbacks with the experiment
        return {k: getattr(self, k) for k in ("project", "group", "directory", "mode", "tags")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def log_trial_start(self, trial: Any) -> None:
        if trial.trial_id in self.runs:
            return
        import wandb

        self.runs[trial.trial_id] = wandb.init(
            project=self.project, group=self.group, name=str(trial), id=trial.trial_id, resume="allow",
            dir=self.directory, mode=self.mode, config=dict(trial.config or {}), tags=self.tags,
            reinit="create_new")

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        self.log_trial_start(trial)
        step = int(result.get("epoch") or iteration)
        self.runs[trial.trial_id].log({k: v for k, v in result.items() if isinstance(v, (int, float))
                                       and not isinstance(v, bool) and not math.isnan(v)}, step=step)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if trial.trial_id in self.runs:
            self.runs.pop(trial.trial_id).finish(exit_code=1 if failed else 0)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        for trial_id in list(self.runs):  # trials the search stopped before they ended
            self.runs.pop(trial_id).finish(exit_code=1)
