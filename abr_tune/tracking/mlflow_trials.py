"""Each Tune trial of a search as an MLflow run, through Tune's public `LoggerCallback`.

Ray's own `MLflowLoggerCallback` starts a new MLflow run for every trial each time Tune starts,
so a search continued with `--resume` would leave each interrupted trial's run RUNNING and start
a second one. This callback finds a trial's run again by its tags (the trial id and the stage)
and continues its metric history; it keeps no client in Tune's saved state.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune.logger import LoggerCallback

from .backends import STAGE_TAG, flat_params

TRIAL_ID_TAG = "abr_tune.trial_id"
TRIAL_NAME_TAG = "trial_name"  # Tune's trial name, the tag Ray's MLflow callback sets too


class MlflowTrialRuns(LoggerCallback):
    """A run per trial in the MLflow experiment `experiment_id`: params from the trial's config,
    every numeric result stepped by epoch; FINISHED or FAILED when the trial ends."""

    def __init__(self, tracking_uri: str, experiment_id: str, tags: dict[str, str]):
        self.tracking_uri, self.experiment_id, self.tags = tracking_uri, experiment_id, dict(tags)
        self.client: Any = None
        self.runs: dict[str, str] = {}  # Tune trial id -> MLflow run id

    def __getstate__(self) -> dict[str, Any]:  # Tune saves its callbacks with the experiment
        return {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id, "tags": self.tags}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["tracking_uri"], state["experiment_id"], state["tags"])

    def setup(self, *args: Any, **kwargs: Any) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(self.tracking_uri)

    def log_trial_start(self, trial: Any) -> None:
        if trial.trial_id in self.runs:
            return
        found = self.client.search_runs(
            [self.experiment_id], max_results=1,
            filter_string=f"tags.`{TRIAL_ID_TAG}` = '{trial.trial_id}' and "
                          f"tags.`{STAGE_TAG}` = '{self.tags.get(STAGE_TAG, '')}'")
        if found:  # a resumed search: the trial's run continues
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            tags = {**self.tags, TRIAL_ID_TAG: trial.trial_id, TRIAL_NAME_TAG: str(trial)}
            run_id = self.client.create_run(self.experiment_id, run_name=str(trial), tags=tags).info.run_id
            from mlflow.entities import Param

            rows = [Param(k, v) for k, v in flat_params(dict(trial.config or {})).items()]
            for i in range(0, len(rows), 100):  # MLflow's log_batch limit
                self.client.log_batch(run_id, params=rows[i:i + 100])
        self.runs[trial.trial_id] = run_id

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        self.log_trial_start(trial)
        step = int(result.get("epoch") or iteration)
        now = int(time.time() * 1000)
        rows = [Metric(key, float(v), now, step) for key, v in result.items()
                if key != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]
        for i in range(0, len(rows), 1000):  # MLflow's log_batch limit
            self.client.log_batch(self.runs[trial.trial_id], metrics=rows[i:i + 1000])

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if trial.trial_id in self.runs:
            self.client.set_terminated(self.runs.pop(trial.trial_id), "FAILED" if failed else "FINISHED")
