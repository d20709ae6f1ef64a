"""A search's tracking: Ray Tune's own logger callbacks log every trial, and the best
configuration is logged when the search ends.

The tracker is chosen when a search starts and kept in `<experiment>/tracking.json`, so
`--resume` and `--extend` log to the same place. MLflow (`mlflow_trials.MlflowTrialRuns`, a
Tune `LoggerCallback`): the experiment's name is the search's; each trial is a run (its name and
`trial_name` tag: Tune's trial name) with the trial's params and a metric history stepped by
epoch, continued by `--resume`; a run named `best`
holds `best_config.yaml` and `search_summary.json`. W&B (`wandb_trials.WandbTrialRuns`): a run
per trial in the project `abr-tune`, grouped by the search's name, and a `best` run with the
best config as an artifact. The callbacks run in the driver: trials need no tracker package.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..hpo.layout import BEST_CONFIG_FILE, SUMMARY_FILE, Experiment
from .backends import STAGE_TAG, TrackingChoice, flat_params, mlflow_experiment, require, wandb_mode
from .train import WANDB_PROJECT

CHOICE_FILE = "tracking.json"  # the experiment's tracker: --resume and --extend read it
EXPERIMENT_TAG = "abr_tune.experiment"
BEST_RUN = "best"


def check_local(exp: Experiment, choice: TrackingChoice | None) -> None:
    """A tracked search keeps its tracker (and MLflow's default store) in a local experiment directory."""
    if choice is not None and exp.local_dir is None:
        raise UserError("--logger needs a local --storage-path (the experiment's tracker is kept in its directory); "
                        "run the search with a local path, or drop --logger")


def save_choice(exp: Experiment, choice: TrackingChoice | None) -> None:
    """Record a new search's tracker in its directory (before its first trial)."""
    if choice is None or exp.local_dir is None:
        return
    exp.local_dir.mkdir(parents=True, exist_ok=True)
    (exp.local_dir / CHOICE_FILE).write_text(choice.to_json())


def saved_choice(exp: Experiment) -> TrackingChoice | None:
    path = exp.local_dir / CHOICE_FILE if exp.local_dir is not None else None
    if path is None or not path.exists():
        return None
    choice = TrackingChoice.from_json(path.read_text())
    require(choice.logger)  # the search was started with it; resuming without it says how to install it
    return choice


def search_callbacks(exp: Experiment, stage: str | None = None) -> list[Any]:
    """Tune's logger callbacks of the experiment's tracker (none when it has none)."""
    choice = saved_choice(exp)
    if choice is None:
        return []
    if choice.logger == "mlflow":
        from .mlflow_trials import MlflowTrialRuns

        uri, experiment = mlflow_experiment(choice, exp.local_dir, exp.name)  # created with its artifact location
        return [MlflowTrialRuns(uri, experiment, tags={EXPERIMENT_TAG: exp.path, STAGE_TAG: stage or "search"})]
    from .wandb_trials import WandbTrialRuns

    require("wandb")
    return [WandbTrialRuns(WANDB_PROJECT, exp.name, str(exp.local_dir), wandb_mode(), [stage or "search"])]


def log_best(exp: Experiment, summary: dict[str, Any]) -> None:
    """The best configuration (and the search's summary) as artifacts of a run named `best`; a tracker
    that fails here only warns: the search's results are safe on disk."""
    try:
        _log_best(exp, summary)
    except Exception as err:  # noqa: BLE001 - a tracker server down must not fail a finished search
        print(f"abr-tune: warning: the best config could not be logged to the tracker ({err}); it is in "
              f"{exp.path}/{BEST_CONFIG_FILE}", file=sys.stderr)


def _log_best(exp: Experiment, summary: dict[str, Any]) -> None:
    choice = saved_choice(exp)
    best_file = exp.local_dir / BEST_CONFIG_FILE if exp.local_dir is not None else None
    if choice is None or best_file is None or not best_file.exists() or not summary.get("best"):
        return
    files = [p for p in (best_file, exp.local_dir / SUMMARY_FILE) if p.exists()]
    best = summary["best"]
    if choice.logger == "mlflow":
        _mlflow_best(choice, exp, best, files)
    else:
        _wandb_best(exp, best, files)


def _mlflow_best(choice: TrackingChoice, exp: Experiment, best: dict[str, Any], files: list[Path]) -> None:
    from mlflow.tracking import MlflowClient

    uri, experiment = mlflow_experiment(choice, exp.local_dir, exp.name)
    client = MlflowClient(uri)
    run = client.create_run(experiment, run_name=BEST_RUN,
                            tags={EXPERIMENT_TAG: exp.path, STAGE_TAG: BEST_RUN,
                                  "abr_tune.best_trial": str(best.get("trial_id"))})
    for key, value in flat_params(best.get("params") or {}).items():
        client.log_param(run.info.run_id, key, value)
    if best.get("best_value") is not None:
        client.log_metric(run.info.run_id, exp.space.metric, float(best["best_value"]),
                          step=best.get("best_epoch") or 0)
    for path in files:
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    print(f"MLflow: experiment '{exp.name}' in {uri}; the best config is in its run '{BEST_RUN}'", flush=True)


def _wandb_best(exp: Experiment, best: dict[str, Any], files: list[Path]) -> None:
    wandb = require("wandb")
    run = wandb.init(project=WANDB_PROJECT, group=exp.name, name=BEST_RUN, job_type=BEST_RUN,
                     dir=str(exp.local_dir), mode=wandb_mode(), config=best.get("params") or {})
    artifact = wandb.Artifact(f"{exp.name}-best-config".replace(" ", "_"), type="config")
    for path in files:
        artifact.add_file(str(path))
    run.log_artifact(artifact)
    run.finish()
