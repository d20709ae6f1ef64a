"""Running the confirmation stage: the top K configurations and the base config over N seeds,
as Ray trials through the same trainable as the search (no scheduler: every run goes to max_t).

The runs form their own Tune experiment inside the search's: `<experiment>/confirm/`.
"""

from __future__ import annotations

import math
from typing import Any

from ..config import from_dict
from ..formatting import finite
from .confirm import BASE_LABEL, Candidate
from .layout import CONFIRM_DIR, Experiment
from .results import TrialRecord, reference_params
from .space import SearchSpace
from .trial import run_trial


def candidates(exp: Experiment, ranked: list[TrialRecord], top_k: int) -> list[Candidate]:
    """The K best usable trials with distinct params, then the base config."""
    reference = reference_params(exp) or exp.space.base_point(from_dict(exp.space.base))
    chosen: list[Candidate] = []
    for t in ranked:
        if len(chosen) == top_k:
            break
        if t.usable and t.params != reference and all(c.params != t.params for c in chosen):
            chosen.append(Candidate(t.trial_id, dict(t.params), t.best_value))
    base_value = next((t.best_value for t in ranked if t.params == reference), None)
    return [*chosen, Candidate(BASE_LABEL, dict(reference), base_value)]


def confirmation_seeds(base_seed: int, n: int) -> list[int]:
    """N training seeds different from the one every search trial used."""
    return [base_seed + 1 + i for i in range(n)]


def run_confirmation(config: dict[str, Any], *, space: SearchSpace, arrays: Any = None) -> None:
    """The Tune trainable of the confirmation stage: one candidate at one seed."""
    run = config["run"]
    run_trial(run["params"], space=space, arrays=arrays, extra={"seed": int(run["seed"])})


def confirm(exp: Experiment, cands: list[Candidate], seeds: list[int], arrays: Any) -> dict[str, dict[int, float]]:
    """Train every candidate at every seed; returns {label: {seed: best value of that run}}."""
    from ray import tune

    s = exp.space
    grid = [{"label": c.label, "params": c.params, "seed": seed} for c in cands for seed in seeds]
    fn = tune.with_resources(tune.with_parameters(run_confirmation, space=s, arrays=arrays),
                             {"cpu": s.resources.cpus_per_trial, "gpu": s.resources.gpus_per_trial})
    tuner = tune.Tuner(
        fn, param_space={"run": tune.grid_search(grid)},
        tune_config=tune.TuneConfig(metric=s.metric, mode=s.mode, max_concurrent_trials=s.max_concurrent,
                                    reuse_actors=True, trial_dirname_creator=_dirname),
        run_config=tune.RunConfig(name=CONFIRM_DIR, storage_path=exp.path, verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=2)))
    runs: dict[str, dict[int, float]] = {}
    for result in tuner.fit():
        run = (result.config or {}).get("run") or {}
        runs.setdefault(run.get("label", "?"), {})[int(run.get("seed", -1))] = _best(result, s.metric, s.mode)
    return runs


def _best(result: Any, metric: str, mode: str) -> float:
    df = result.metrics_dataframe
    values = [v for v in ([] if df is None or metric not in df else df[metric].tolist()) if finite(v)]
    return (min if mode == "min" else max)(values) if values else math.nan


def _dirname(trial: Any) -> str:
    run = (trial.config or {}).get("run") or {}
    return f"confirm_{run.get('label', trial.trial_id)}_seed{run.get('seed', '')}"
