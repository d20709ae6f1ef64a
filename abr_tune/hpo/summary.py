"""The end of a search: the ranked table, search_summary.json, best_config.yaml and the next commands."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Optional

from ..formatting import fmt_value, json_safe, shell, table
from .front import chosen_record, format_front, search_front
from .layout import BEST_CONFIG_FILE, RETRAIN_DIR, SPACE_FILE, SUMMARY_FILE, Experiment, extension_dirs
from .objectives import shown
from .params import short_name
from .results import TrialRecord, rank, reference_params, trial_record
from .space_file import load_space
from .transfer import train_config


def summarise_search(exp: Experiment, results: Any, tune_trials: dict[str, Any], *, wall_time_sec: float,
                     resumed: bool, confirm_stage: Optional[str] = None) -> dict[str, Any]:
    """Print the ranked table, write the summary and best config, print the next commands.

    `results` and `tune_trials` (trial id -> Tune's Trial) cover the whole search: with an extension,
    the search's own Tune experiment and every extension's (`tuner.tune_paths`). A trial that is neither TERMINATED
    nor ERROR (Ctrl-C) marks the search as interrupted: no best config, a --resume hint. A trial
    that misses a constraint is never the best. With `confirm_stage` (a confirmation runs next)
    the summary records the confirmation as pending, so a search killed during it resumes it.
    """
    trials = rank([trial_record(exp, r, tune_trials) for r in results], exp.space.mode)
    reference = reference_params(exp)
    for t in trials:
        t.is_reference = t.params == reference
    interrupted = len(trials) < exp.total_samples or any(t.status.startswith("unfinished") for t in trials)
    best = None if interrupted else next((t for t in trials if t.usable and t.feasible is not False), None)
    pareto = search_front(exp, trials) if exp.space.multi and not interrupted else None
    print(format_table(trials, exp, pareto), flush=True)
    if pareto is not None:
        print(format_front(pareto, exp), flush=True)
        best = chosen_record(pareto, trials)
    summary = _summary(exp, trials, best, wall_time_sec, resumed)
    summary["interrupted"] = interrupted
    if pareto is not None:
        summary["pareto"] = pareto
    if best is not None:
        note = f"Chosen from the Pareto front: {pareto['rule']}" if pareto else ""
        if confirm_stage:
            summary["confirmation"] = pending(exp, confirm_stage)
            note = "Not confirmed over seeds yet (the confirmation runs next; --resume continues it if stopped)"
        summary["best_config"] = write_best_config(exp, best, note)
    write_summary(exp, summary)
    if interrupted:
        print(f"Search interrupted: {sum(not t.status.startswith('unfinished') for t in trials)} of "
              f"{exp.total_samples} trials finished. Continue it with:\n"
              f"  python -m abr_tune.search --resume {shell(exp.path)}", flush=True)
    else:
        _print_outcome(exp, best, summary)
    return summary


def format_table(trials: list[TrialRecord], exp: Experiment, pareto: Optional[dict[str, Any]] = None) -> str:
    """The ranked table; with several objectives each one's value at the trial's valued epoch and
    whether the trial is on the Pareto front."""
    names = [p.name for p in exp.space.params]
    short = [short_name(n) for n in names]
    more = exp.space.objectives[1:]
    on_front = set((pareto or {}).get("front", []))
    constrained = bool(exp.space.constraints)
    head = ["#", "trial", *short, f"best {exp.space.metric}", *more, *(["front"] if more else []),
            *(["constraints"] if constrained else []), "last", "epochs", "early", "status"]
    rows = []
    for i, t in enumerate(trials, 1):
        params = [fmt_value(t.params[n]) if n in t.params else "-" for n in names]
        extra = [shown(m, t.objectives.get(m)) if t.objectives else "-" for m in more]
        extra += ["yes" if t.trial_id in on_front else ""] if more else []
        extra += ["met" if t.feasible else "missed"] if constrained else []
        rows.append([str(i), t.trial_id + (" *" if t.is_reference else ""), *params, fmt_value(t.best_value), *extra,
                     fmt_value(t.last_value), str(t.epochs_run), "yes" if t.stopped_early else "no", t.status])
    lines = table([head, *rows])
    if any(t.is_reference for t in trials):
        lines.append("* the base config's own values (the reference to beat)")
    if constrained:
        lines.append(f"Constraints {', '.join(exp.space.constraints)} (judged at each trial's valued epoch): "
                     "a trial that misses one cannot be the best")
    return "\n".join(["", f"Trials ranked by {exp.space.metric} ({exp.space.mode}):", *lines, ""])


def write_best_config(exp: Experiment, best: TrialRecord, note: str = "") -> str:
    """A complete train config for the best params at the length the search measured (the trials'
    max_t epochs, the LR schedule over them), on the device the trials used. `retrain --max-epochs N`
    (or editing trainer.max_epochs) trains longer, the schedule then decaying over N."""
    space = exp.space
    log_dir = str(exp.local_dir) if exp.local_dir else "runs/search_retrain/" + exp.name
    device = "cuda" if space.resources.gpus_per_trial > 0 else space.base.get("device", "auto")
    cfg = train_config(space.base, best.overrides, log_dir=log_dir, exp_name=RETRAIN_DIR, device=device,
                       max_epochs=space.scheduler.max_t)
    header = (f"# Best trial {best.trial_id} of search '{exp.name}': {space.metric} = {fmt_value(best.best_value, 6)} "
              f"at epoch {best.best_epoch} (trials ran <= {space.scheduler.max_t} epochs).\n"
              + (f"# {note}\n" if note else "")
              + f"# Searched values: {json.dumps(best.overrides)}\n"
              f"# Re-train: python -m abr_tune.retrain --experiment {shell(exp.path)} "
              "(add --max-epochs N to train longer)\n")
    _write_text(exp, BEST_CONFIG_FILE, header + cfg.to_yaml())
    return f"{exp.path}/{BEST_CONFIG_FILE}"


def _summary(exp: Experiment, trials: list[TrialRecord], best: Optional[TrialRecord],
             wall_time_sec: float, resumed: bool) -> dict[str, Any]:
    reference = next((t for t in trials if t.is_reference), None)
    return {
        "name": exp.name, "experiment_dir": exp.path, "metric": exp.space.metric, "mode": exp.space.mode,
        "study": {"storage": f"sqlite:///{exp.study_db}", "study_name": exp.study_name},
        "wall_time_sec": round(wall_time_sec, 1), "resumed": resumed,
        "num_samples": exp.total_samples, "extensions": extensions(exp),
        "num_trials": len(trials), "num_stopped_early": sum(t.stopped_early for t in trials),
        "max_epochs": exp.space.scheduler.max_t, "constraints": list(exp.space.constraints),
        "best": brief(best), "reference": brief(reference),
        "trials": [asdict(t) for t in trials],
    }


def extensions(exp: Experiment) -> list[dict[str, Any]]:
    """The search's extensions so far: each one's Tune experiment directory and number of trials."""
    if not exp.run or exp.local_dir is None:
        return []
    runs = extension_dirs(exp.local_dir)
    runs = runs[:runs.index(exp.run) + 1] if exp.run in runs else runs
    return [{"dir": f"{exp.path}/{r}", "num_samples": load_space(exp.local_dir / r / SPACE_FILE).num_samples}
            for r in runs]


def brief(t: Optional[TrialRecord]) -> Optional[dict[str, Any]]:
    if t is None:
        return None
    keys = ("trial_id", "params", "overrides", "best_value", "best_epoch", "best_checkpoint", "status")
    return {k: getattr(t, k) for k in keys}


def _print_outcome(exp: Experiment, best: Optional[TrialRecord], summary: dict[str, Any]) -> None:
    print(f"Summary: {summary['num_trials']} trials, {summary['num_stopped_early']} stopped early by ASHA, "
          f"{summary['wall_time_sec']:.0f} s; {exp.path}/{SUMMARY_FILE}")
    if best is None:
        unmet = any(t.get("feasible") is False and t.get("best_value") is not None for t in summary["trials"])
        print("No trial on the Pareto front meets the constraints; see the front above." if summary.get("pareto")
              else f"No trial meets the constraints {', '.join(exp.space.constraints)}; no best config written."
              if unmet else f"No trial finished with a finite {exp.space.metric}; see the statuses above.")
        return
    ref = summary["reference"]
    if ref and ref["best_value"] is not None and ref["trial_id"] != best.trial_id:
        print(f"Best {exp.space.metric} {best.best_value:.4g} vs {ref['best_value']:.4g} for the base config.")
    print(f"Best trial: {best.trial_id} {json.dumps(best.overrides)}\n"
          f"Best checkpoint: {best.best_checkpoint}\n"
          f"Best config: {summary['best_config']}\n"
          f"Re-train it (the searched length; --max-epochs N trains longer) and test it:\n"
          f"  python -m abr_tune.retrain --experiment {shell(exp.path)}\n"
          f"TensorBoard: tensorboard --logdir {shell(exp.path)}\n"
          f"Optuna study: optuna-dashboard {shell(f'sqlite:///{exp.study_db}')}", flush=True)


def write_summary(exp: Experiment, summary: dict[str, Any]) -> None:
    _write_text(exp, SUMMARY_FILE, json.dumps(json_safe(summary), indent=1, default=str))


def _write_text(exp: Experiment, name: str, text: str) -> None:
    if exp.local_dir is not None:
        (exp.local_dir / name).write_text(text)
        return
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(exp.path)
    with fs.open_output_stream(f"{root}/{name}") as out:
        out.write(text.encode())


def pending(exp: Experiment, stage: str) -> dict[str, Any]:
    """The summary's record of a confirmation not yet done (`--resume` runs or continues it)."""
    return {"state": "pending", "stage": stage, "dir": f"{exp.path}/{stage}"}


def resumed_stage(summary: Optional[dict[str, Any]]) -> Optional[str]:
    """The stage of the confirmation an earlier run of this search started and did not finish."""
    record = (summary or {}).get("confirmation") or {}
    return record.get("stage") if record.get("state") in ("pending", "interrupted") else None
