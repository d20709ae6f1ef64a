"""Each trial of a finished (or interrupted) search as a TrialRecord: status, history, best epoch.

Built from Tune's results and train_abr's own summary in the trial directory; `rank` orders
them by each trial's best epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import from_dict
from ..errors import UserError
from ..formatting import finite, json_safe
from ..metrics_registry import in_history
from .layout import TRIAL_SUMMARY_FILE, TUNE_CHECKPOINT_FILE, Experiment
from .objectives import constraint_row, valued_epoch

STOPPED_EARLY = "stopped early by ASHA"  # status prefix of a trial the scheduler stopped


@dataclass
class TrialRecord:
    """One trial as the report and search_summary.json describe it."""

    trial_id: str
    trial_dir: str
    params: dict[str, Any]
    overrides: dict[str, Any]
    status: str
    epochs_run: int
    stopped_early: bool
    best_value: Optional[float]
    best_epoch: Optional[int]
    last_value: Optional[float]
    best_checkpoint: Optional[str]
    nodes: list[str]
    is_reference: bool = False  # the base config's own values (points_to_evaluate: base)
    history: list[dict[str, Any]] = field(default_factory=list)
    # Several objectives: every objective and constraint metric at the epoch the trial is valued at
    # (`objectives.valued_epoch`); empty for one objective and for trials stopped before max_t.
    objectives: dict[str, float] = field(default_factory=dict)
    # With constraints: whether the trial meets every one at its valued epoch (None: the space has none).
    # A trial that misses one cannot be the best, whatever the number of objectives.
    feasible: Optional[bool] = None

    @property
    def usable(self) -> bool:
        """Can be "best": finished cleanly enough and scored a finite value."""
        return self.best_value is not None and not self.status.startswith(("diverged", "error"))


def trial_record(exp: Experiment, result: Any, tune_trials: dict[str, Any]) -> TrialRecord:
    space, metric = exp.space, exp.space.metric
    summary = _read_json(result, TRIAL_SUMMARY_FILE)
    names = space.objectives + [c.metric for c in space.parsed_constraints()]
    history = _history(result.metrics_dataframe, summary, names)
    scored = [(h[metric], h["epoch"]) for h in history if finite(h.get(metric))]
    best = (min if space.mode == "min" else max)(scored, default=(None, None))
    trial_id = str((result.metrics or {}).get("trial_id") or _trial_id(result.path))
    tune_trial = tune_trials.get(trial_id)
    tune_status = tune_trial.status if tune_trial else "TERMINATED"
    params = dict(result.config or (tune_trial.config if tune_trial else {}))
    if tune_status not in ("TERMINATED", "ERROR"):
        status, stopped = f"unfinished ({tune_status.lower()}): --resume continues it", False
    else:
        status, stopped = _status(result, summary, history, space.scheduler.max_t)
    objectives: dict[str, float] = {}
    if space.multi:  # valued at one epoch for every objective, as the study records it
        row = None if stopped or status.startswith(("diverged", "error", "unfinished")) else \
            valued_epoch(history, space.objectives, space.mode)
        best = (row[metric], row["epoch"]) if row else (None, None)
        objectives = {n: row[n] for n in names if row and (n in space.objectives or finite(row.get(n)))}
    elif space.constraints:  # judged where the study judges them (`objectives.constraint_row`)
        row = constraint_row(history, space.objectives, space.parsed_constraints(), space.mode)
        objectives = {n: row[n] for n in names if row and finite(row.get(n))}
    feasible = None if not space.constraints else \
        all(c.met(objectives.get(c.metric)) for c in space.parsed_constraints())
    return TrialRecord(
        trial_id=trial_id, trial_dir=str(result.path),
        params=params, overrides=space.resolve(params), status=status,
        epochs_run=int(history[-1]["epoch"]) if history else 0, stopped_early=stopped,
        best_value=best[0], best_epoch=best[1], last_value=history[-1].get(metric) if history else None,
        best_checkpoint=_best_checkpoint(result, metric, space.mode),
        nodes=sorted({str(n) for n in _column(result.metrics_dataframe, "node_id")}), history=history,
        objectives=objectives, feasible=feasible)


def _trial_id(path: str) -> str:
    """Trial dirs are named trial_<id>_<params> (hpo.tuner.trial_dirname)."""
    return Path(path).name.split("_")[1]


def _history(df: Any, summary: Optional[dict], names: list[str] = ()) -> list[dict[str, Any]]:
    """Per-epoch metrics, one row per epoch: Tune's results, completed by train_abr's own history.

    A worker killed just after a report can lose that report's row in Tune while its
    checkpoint (and so train_abr's restored history) still holds the epoch.
    """
    rows: dict[int, dict[str, Any]] = {}
    records = [] if df is None or "epoch" not in df else df.to_dict("records")
    for row in records + list((summary or {}).get("history") or []):
        if finite(row.get("epoch")):
            epoch = int(row["epoch"])
            keys = [k for k in row if in_history(k) or k in names]  # the search's own metrics too
            rows[epoch] = {**rows.get(epoch, {}), **{k: json_safe(row[k]) for k in keys}}
            rows[epoch]["epoch"] = epoch
    return [rows[e] for e in sorted(rows)]


def _column(df: Any, name: str) -> list[Any]:
    return [] if df is None or name not in df else [v for v in df[name].tolist() if isinstance(v, str)]


def _status(result: Any, summary: Optional[dict], history: list[dict], max_t: int) -> tuple[str, bool]:
    """Status from train_abr's summary when it got to write one, else from the reported epochs.

    A trial ASHA stopped writes "stopped early by ASHA at epoch k"; one whose worker went away
    before it could write a summary is judged by its last reported epoch.
    """
    if result.error is not None:
        return f"error: {_error_line(result.error)}", False
    if summary is not None:
        status = str(summary.get("status", "completed"))
        return status, status.startswith(STOPPED_EARLY)
    if not history:
        return "no result", False
    last = history[-1]["epoch"]
    if history[-1].get("diverged"):
        return f"diverged: non-finite loss at epoch {last}", False
    if last < max_t:
        return f"{STOPPED_EARLY} at epoch {last}", True
    return "completed", False


def _error_line(error: BaseException) -> str:
    """The exception's last line; a UserError (bad data or config in the trial) without its class name."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    line = lines[-1] if lines else type(error).__name__
    return line.removeprefix(f"{UserError.__module__}.{UserError.__qualname__}: ")[:200]


def _best_checkpoint(result: Any, metric: str, mode: str) -> Optional[str]:
    scored = [(m.get(metric), c) for c, m in (result.best_checkpoints or []) if finite(m.get(metric))]
    if not scored:
        return None
    _, checkpoint = (min if mode == "min" else max)(scored, key=lambda s: s[0])
    return f"{checkpoint.path}/{TUNE_CHECKPOINT_FILE}"


def _read_json(result: Any, name: str) -> Optional[dict]:
    try:
        with result.filesystem.open_input_stream(f"{result.path}/{name}") as f:
            return json.loads(f.read().decode())
    except (OSError, ValueError):
        return None


def reference_params(exp: Experiment) -> Optional[dict[str, Any]]:
    points = exp.space.search.points_to_evaluate
    if "base" not in points:
        return None
    return exp.space.points_to_evaluate(from_dict(exp.space.base))[points.index("base")]


def rank(trials: list[TrialRecord], mode: str) -> list[TrialRecord]:
    """Usable trials by best value, then diverged/errored/unscored ones."""
    sign = 1.0 if mode == "min" else -1.0
    return sorted(trials, key=lambda t: (not t.usable, sign * t.best_value if t.usable else 0.0, t.trial_id))
