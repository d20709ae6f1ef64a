"""Running the confirmation stage: the top K configurations and the base config over N seeds,
as Ray trials through the same trainable as the search (no scheduler: every run goes to max_t).

The runs form their own Tune experiment inside the search's: `<experiment>/confirm/`.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from ..config import from_dict
from ..formatting import finite, shell
from ..metrics_registry import is_sampling_marker
from .confirm import BASE_LABEL, Candidate, format_table, summarise, verdict_line, verdict_of, winner
from .confirm_race import race, race_verdict, raced_rows, racing_plan_text, spread_line
from .front import format_front, front_of
from .layout import CONFIRM_DIR, Experiment
from .objectives import valued_epoch
from .results import TrialRecord, reference_params
from .space import SearchSpace
from .trial import run_trial
from .tuner import run_config


def candidates(exp: Experiment, ranked: list[TrialRecord], top_k: int,
               front: Optional[list[str]] = None) -> list[Candidate]:
    """The K best usable trials with distinct params (the Pareto front's members, best primary first,
    when `front` is given), then the base config."""
    reference = reference_params(exp) or exp.space.base_point(from_dict(exp.space.base))
    chosen: list[Candidate] = []
    if front is not None:
        ranked = [t for label in front for t in ranked if t.trial_id == label]
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


def confirm(exp: Experiment, cands: list[Candidate], seeds: list[int], arrays: Any, stage: str = CONFIRM_DIR,
            only: Optional[list[tuple[str, int]]] = None) -> tuple[dict[str, dict[int, dict[str, float]]], int]:
    """Train every candidate at every seed (or only the (label, seed) runs in `only`: a race's round)
    in `<experiment>/<stage>/` (continuing the runs an interrupted
    confirmation left there); returns ({label: {seed: the run's metrics at its valued epoch}} (the best
    epoch of the primary metric, which measured every objective), how many runs are missing).

    Runs are missing when Tune was interrupted (Ctrl-C, SIGTERM): their values are then not a verdict."""
    from ray import tune

    s = exp.space
    grid = [{"label": c.label, "params": c.params, "seed": seed} for c in cands for seed in seeds
            if only is None or (c.label, seed) in only]
    fn = tune.with_resources(tune.with_parameters(run_confirmation, space=s, arrays=arrays),
                             {"cpu": s.resources.cpus_per_trial, "gpu": s.resources.gpus_per_trial})
    path = f"{exp.path}/{stage}"
    if tune.Tuner.can_restore(path):  # an interrupted or killed confirmation: finished runs are kept
        print(f"Continuing the confirmation in {path}", flush=True)
        tuner = tune.Tuner.restore(path, trainable=fn, resume_unfinished=True, resume_errored=False)
    else:
        tuner = tune.Tuner(
            fn, param_space={"run": tune.grid_search(grid)},
            tune_config=tune.TuneConfig(metric=s.metric, mode=s.mode, max_concurrent_trials=s.max_concurrent,
                                        reuse_actors=True, trial_dirname_creator=_dirname),
            run_config=run_config(exp, stage=stage))
    results = tuner.fit()
    runs: dict[str, dict[int, dict[str, float]]] = {}
    names = s.objectives + [c.metric for c in s.parsed_constraints()]
    for result in results:
        run = (result.config or {}).get("run") or {}
        runs.setdefault(run.get("label", "?"), {})[int(run.get("seed", -1))] = _valued(result, names, s)
    return runs, len(grid) - results.num_terminated - results.num_errors


def _valued(result: Any, names: list[str], space: SearchSpace) -> dict[str, float]:
    df = result.metrics_dataframe
    rows = [] if df is None or "epoch" not in df else df.to_dict("records")
    row = valued_epoch(rows, space.objectives, space.mode) or {}
    names = names + [k for k in row if is_sampling_marker(k)]
    return {n: float(row[n]) if finite(row.get(n)) or row.get(n) == math.inf else math.nan for n in names}


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


def confirm_search(exp: Experiment, summary: dict[str, Any], arrays: Any, top_k: int, n_seeds: int,
                   stage: str) -> dict[str, Any]:
    """The confirmation stage after a finished search, in `<experiment>/<stage>/`: run it, print the table
    and the verdict, and make the confirmed winner (the base config when nothing beats it) the search's
    best and best_config.yaml. Interrupted, it records that and no verdict: the summary says
    `interrupted` and `--resume` continues it. Returns the updated summary (also in search_summary.json)."""
    import time
    from dataclasses import asdict

    from .summary import brief, write_best_config, write_summary

    started = time.time()
    records = [TrialRecord(**t) for t in summary["trials"]]
    pareto = summary.get("pareto")
    cands = candidates(exp, records, top_k, pareto["front"] if pareto else None)
    seeds = confirmation_seeds(from_dict(exp.space.base).seed, n_seeds)
    spec, log = exp.space.confirm, None
    if spec.race and not pareto:
        slots = exp.space.max_concurrent
        print("\n" + racing_plan_text(len(cands) - 1, seeds, exp.space.scheduler.max_t, spec.alpha, slots), flush=True)
        runs, missing, log = race(exp, cands, seeds, arrays, stage, exp.space.metric, exp.space.mode, spec.alpha,
                                  confirm, slots=slots, spread=spec.spread)
    else:
        print(f"\nConfirming {', '.join(c.label for c in cands)} over {len(seeds)} training seeds "
              f"({len(cands) * len(seeds)} runs of {exp.space.scheduler.max_t} epochs) ...", flush=True)
        runs, missing = confirm(exp, cands, seeds, arrays, stage)
    if missing:
        planned = sum(len(by_seed) for by_seed in runs.values())  # a race: the runs of its rounds so far
        return _interrupted(exp, summary, stage, missing, len(cands) * len(seeds) if log is None else planned)
    primary = {label: {seed: row[exp.space.metric] for seed, row in by_seed.items()} for label, by_seed in runs.items()}
    rows = summarise(primary, cands, seeds, exp.space.mode)
    if log is not None:
        rows = raced_rows(rows, log, len(seeds))
    print(format_table(rows, exp.space.metric, seeds))
    if log is not None:
        print(spread_line(log, spec.spread))
    verdict = verdict_line(rows) if log is None else race_verdict(rows, log)
    best_label = (winner(rows).label if winner(rows) else BASE_LABEL) if log is None else log["winner"]
    if pareto:  # several objectives: the front over the confirmed means, and the rule's pick on it
        summary["pareto_search"], summary["pareto"] = pareto, confirmed_front(exp, cands, runs)
        print(format_front(summary["pareto"], exp), flush=True)
        best_label = summary["pareto"]["chosen"] or BASE_LABEL
        verdict = (f"Chosen from the confirmed Pareto front ({summary['pareto']['rule']}): {best_label}"
                   + _primary_against_base(rows, best_label, exp.space.metric))
    print(verdict, flush=True)
    chosen = _record(exp, records, best_label, cands)
    note = f"Confirmed over seeds {', '.join(map(str, seeds))}: {verdict}"
    summary["confirmation"] = {"state": "done", "stage": stage, "seeds": seeds, "top_k": top_k, "winner": best_label,
                               "verdict": verdict, "rows": [asdict(r) for r in rows],
                               "dir": f"{exp.path}/{stage}", "wall_time_sec": round(time.time() - started, 1)}
    if log is not None:
        summary["confirmation"]["race"] = {**log, "alpha": spec.alpha, "spread": spec.spread, "seed_cap": len(seeds),
                                           "runs": sum(len(r["ran"]) for r in log["rounds"]),
                                           "runs_fixed": len(cands) * len(seeds)}
    summary["best"] = brief(chosen)
    summary["best_config"] = write_best_config(exp, chosen, note)
    write_summary(exp, summary)
    print(f"Best config (confirmed): {summary['best_config']}", flush=True)
    return summary


def _interrupted(exp: Experiment, summary: dict[str, Any], stage: str, missing: int, total: int) -> dict[str, Any]:
    """Record an interrupted confirmation: no verdict, best_config.yaml left as the search's unconfirmed pick."""
    from .summary import pending, write_summary

    summary["interrupted"] = True
    summary["confirmation"] = {**pending(exp, stage), "state": "interrupted", "runs": total,
                               "runs_finished": total - missing}
    write_summary(exp, summary)
    print(f"Confirmation interrupted: {total - missing} of {total} runs finished, no verdict; best_config.yaml "
          f"holds the search's unconfirmed pick. Continue it with:\n"
          f"  python -m abr_tune.search --resume {shell(exp.path)}", flush=True)
    return summary


def _primary_against_base(rows: list, label: str, metric: str) -> str:
    row = next((r for r in rows if r.label == label), None)
    if row is None or label == BASE_LABEL or row.diff_mean is None:
        return "."
    return f"; on {metric} alone it is {verdict_of(row.beats_base, row.worse_than_base)} ({row.diff_mean:+.4g} paired)."


def confirmed_front(exp: Experiment, cands: list[Candidate], runs: dict[str, dict[int, dict[str, float]]]) -> dict:
    """The Pareto front over each candidate's means over seeds (every seed's run measured)."""
    rows = []
    for c in cands:
        by_seed = runs.get(c.label, {})
        means = {n: sum(r[n] for r in by_seed.values()) / len(by_seed) for n in next(iter(by_seed.values()), {})}
        if by_seed and all(not math.isnan(means.get(n, math.nan)) for n in exp.space.objectives):
            rows.append({"label": c.label, "values": means, "params": dict(c.params),
                         "overrides": exp.space.resolve(c.params), "is_reference": c.label == BASE_LABEL,
                         "seeds": len(by_seed)})
    return front_of(rows, exp, source="confirmed")


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
