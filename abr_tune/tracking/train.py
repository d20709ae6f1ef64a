"""The trackers of one `train_abr` run: each epoch's metrics logged as the run goes.

A `Tracker` (see `abr_tune.training.callbacks`) watches a run without driving it: train_abr
calls `start` once the run is set up, `epoch` after each epoch, `finish` with its summary
(None when the run raised). MLflow: one run in the experiment `abr-tune train` of the store
in the config's log_dir (`<log_dir>/mlruns/`), named after exp_name, the flattened config as
params; `--resume` continues the same MLflow run. W&B: one run in the project `abr-tune`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from .backends import TrackingChoice, flat_params, mlflow_experiment, require, wandb_mode

TRAIN_EXPERIMENT = "abr-tune train"  # the MLflow experiment every training run logs to
RUN_DIR_TAG = "abr_tune.run_dir"  # a run's directory: --resume finds its MLflow run by it
WANDB_PROJECT = "abr-tune"


def train_tracker(choice: TrackingChoice | None) -> Any:
    """The tracker `choice` asks for (None: no tracking)."""
    if choice is None:
        return None
    return MlflowTrainTracker(choice) if choice.logger == "mlflow" else WandbTrainTracker()


class MlflowTrainTracker:
    def __init__(self, choice: TrackingChoice):
        self.choice, self.client, self.run_id = choice, None, ""

    def start(self, cfg: TrainConfig, resumed: bool) -> None:
        from mlflow.tracking import MlflowClient

        uri, experiment = mlflow_experiment(self.choice, Path(cfg.log_dir), TRAIN_EXPERIMENT)
        self.client = MlflowClient(uri)
        run_dir = str(Path(cfg.run_dir).resolve())
        if resumed:  # the run this checkpoint belongs to, when it was tracked here
            found = self.client.search_runs([experiment], filter_string=f"tags.`{RUN_DIR_TAG}` = '{_quote(run_dir)}'",
                                            max_results=1, order_by=["attributes.start_time DESC"])
            if found:
                self.run_id = found[0].info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
                print(f"abr-tune: MLflow: continuing run {self.run_id} in {uri}", flush=True)
                return
        run = self.client.create_run(experiment, run_name=cfg.exp_name, tags={RUN_DIR_TAG: run_dir})
        self.run_id = run.info.run_id
        _log_params(self.client, self.run_id, flat_params(cfg.to_dict()))
        config_file = Path(cfg.run_dir) / "config.yaml"
        if config_file.exists():
            self.client.log_artifact(self.run_id, str(config_file))
        print(f"abr-tune: MLflow: run {self.run_id} ('{cfg.exp_name}') in {uri}", flush=True)

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(key, float(v), now, epoch) for key, v in metrics.items() if key != "epoch" and _number(v)]
        for i in range(0, len(rows), 1000):  # MLflow's log_batch limit
            self.client.log_batch(self.run_id, metrics=rows[i:i + 1000])

    def finish(self, summary: dict[str, Any] | None) -> None:
        if self.client is None:
            return
        if summary is not None:
            brief = {k: v for k, v in summary.items() if k != "history"}
            self.client.log_dict(self.run_id, brief, "train_summary.json")
        ok = summary is not None and summary["status"] in ("completed", "early_stopped")
        failed = summary is None or summary["status"].startswith("diverged")
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED" if failed else "KILLED")


class WandbTrainTracker:
    def __init__(self):
        self.run = None

    def start(self, cfg: TrainConfig, resumed: bool) -> None:
        wandb = require("wandb")
        mode = wandb_mode()
        self.run = wandb.init(project=WANDB_PROJECT, name=cfg.exp_name, dir=str(cfg.run_dir), mode=mode,
                              config=cfg.to_dict(), tags=["resumed"] if resumed else None)
        print(f"abr-tune: W&B ({mode}): run '{cfg.exp_name}' in {cfg.run_dir}/wandb", flush=True)

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.run.log({k: v for k, v in metrics.items() if _number(v)}, step=epoch)

    def finish(self, summary: dict[str, Any] | None) -> None:
        if self.run is None:
            return
        if summary is not None:
            self.run.summary.update({"status": summary["status"], "best_val_mse_v": summary["best_val_mse_v"],
                                     "best_epoch": summary["best_epoch"]})
        self.run.finish(exit_code=0 if summary is not None and summary["status"] != "interrupted" else 1)


def _log_params(client: Any, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    rows = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(rows), 100):  # MLflow's log_batch limit
        client.log_batch(run_id, params=rows[i:i + 100])


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
