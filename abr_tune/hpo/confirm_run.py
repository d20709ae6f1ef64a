"""Running the confirmation stage: the top K configurations and the base config over N seeds,
as Ray trials through the same trainable as the search (no scheduler: every run goes to max_t).

The runs form their own Tune experiment inside the search's: `<experiment>/confirm/`.
"""

from __future__ import annotations

import math
from typing import Any

from ..config import from_dict
from ..formatting import finite
from .confirm import BASE_LABEL, Candidate, format_table, summarise, verdict_line, winner
from .layout import CONFIRM_DIR, Experiment
from .results import TrialRecord, reference_params
from .space import SearchSpace
from .trial import run_trial
from .tuner import run_config


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


def confirm(exp: Experiment, cands: list[Candidate], seeds: list[int], arrays: Any,
            stage: str = CONFIRM_DIR) -> dict[str, dict[int, float]]:
    """Train every candidate at every seed in `<experiment>/<stage>/`; returns {label: {seed: best value}}."""
    from ray import tune

    s = exp.space
    grid = [{"label": c.label, "params": c.params, "seed": seed} for c in cands for seed in seeds]
    fn = tune.with_resources(tune.with_parameters(run_confirmation, space=s, arrays=arrays),
                             {"cpu": s.resources.cpus_per_trial, "gpu": s.resources.gpus_per_trial})
    tuner = tune.Tuner(
        fn, param_space={"run": tune.grid_search(grid)},
        tune_config=tune.TuneConfig(metric=s.metric, mode=s.mode, max_concurrent_trials=s.max_concurrent,
                                    reuse_actors=True, trial_dirname_creator=_dirname),
        run_config=run_config(exp, stage=stage))
    runs: dict[str, dict[int, float]] = {}
    for result in tuner.fit():
        run = (result.config or {}).get("run") or {}
        runs.setdefault(run.get("label", "?"), {})[int(run.get("seed", -1))] = _best(result, s.metric, s.mode)
    return runs


def _best(result: Any, metric: str, mode: str) -> float:
    df = result.metrics_dataframe
    values = [v for v in ([] if df is None or metric not in df else df[metric].tolist()) if finite(v)]
    return (min if mode == "min" else max)(values) if values else math.nan


def stage_dir(exp: Experiment) -> str:
    """confirm/, or confirm_2/, confirm_3/ ... when an extended search confirms again (the earlier stays)."""
    if exp.local_dir is None or not (exp.local_dir / CONFIRM_DIR).exists():
        return CONFIRM_DIR
    n = 2
    while (exp.local_dir / f"{CONFIRM_DIR}_{n}").exists():
        n += 1
    return f"{CONFIRM_DIR}_{n}"


def _dirname(trial: Any) -> str:
    run = (trial.config or {}).get("run") or {}
    return f"confirm_{run.get('label', trial.trial_id)}_seed{run.get('seed', '')}"


def confirm_search(exp: Experiment, summary: dict[str, Any], arrays: Any, top_k: int, n_seeds: int) -> dict[str, Any]:
    """The confirmation stage after a finished search: run it, print the table and the verdict, and
    make the confirmed winner (the base config when nothing beats it) the search's best and
    best_config.yaml. Returns the updated summary (also written to search_summary.json)."""
    from dataclasses import asdict

    from .summary import brief, write_best_config, write_summary

    records = [TrialRecord(**t) for t in summary["trials"]]
    cands = candidates(exp, records, top_k)
    seeds = confirmation_seeds(from_dict(exp.space.base).seed, n_seeds)
    print(f"\nConfirming {', '.join(c.label for c in cands)} over {len(seeds)} training seeds "
          f"({len(cands) * len(seeds)} runs of {exp.space.scheduler.max_t} epochs) ...", flush=True)
    stage = stage_dir(exp)
    rows = summarise(confirm(exp, cands, seeds, arrays, stage), cands, seeds, exp.space.mode)
    print(format_table(rows, exp.space.metric, seeds))
    print(verdict_line(rows), flush=True)
    best = winner(rows)
    chosen = _record(exp, records, best.label if best else BASE_LABEL, cands)
    note = (f"Confirmed over seeds {', '.join(map(str, seeds))}: {verdict_line(rows)}")
    summary["confirmation"] = {"seeds": seeds, "top_k": top_k, "winner": chosen.trial_id if best else BASE_LABEL,
                               "verdict": verdict_line(rows), "rows": [asdict(r) for r in rows],
                               "dir": f"{exp.path}/{stage}"}
    summary["best"] = brief(chosen)
    summary["best_config"] = write_best_config(exp, chosen, note)
    write_summary(exp, summary)
    print(f"Best config (confirmed): {summary['best_config']}", flush=True)
    return summary


def _record(exp: Experiment, records: list[TrialRecord], label: str, cands: list[Candidate]) -> TrialRecord:
    """The trial record of a candidate; the base config's own record when the search ran it, else
    one built from the base config's values."""
    if label != BASE_LABEL:
        return next(r for r in records if r.trial_id == label)
    base = next(c for c in cands if c.label == BASE_LABEL)
    found = next((r for r in records if r.params == base.params), None)
    if found is not None:
        return found
    return TrialRecord(trial_id=BASE_LABEL, trial_dir="", params=base.params, overrides=exp.space.resolve(base.params),
                       status="completed", epochs_run=0, stopped_early=False, best_value=None, best_epoch=None,
                       last_value=None, best_checkpoint=None, nodes=[], is_reference=True)
