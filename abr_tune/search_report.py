"""The end of a search: ranked table, search_summary.json, best_config.yaml, re-train command."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .config import apply_overrides, from_dict
from .errors import UserError

if TYPE_CHECKING:
    from .search import Experiment

SUMMARY_FILE = "search_summary.json"
BEST_CONFIG_FILE = "best_config.yaml"
RETRAIN_DIR = "retrain"  # best_config.yaml trains into <experiment>/retrain/
STOPPED_EARLY = "stopped early by ASHA"  # status prefix of a trial the scheduler stopped
HISTORY_KEYS = ("epoch", "val/mse_v", "epoch/train_loss_avg", "train/lr", "epoch/time_sec",
                "sample/corr", "sample/mse_uv", "sample/wave_v_latency_mae_ms", "diverged")


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

    @property
    def usable(self) -> bool:
        """Can be "best": finished cleanly enough and scored a finite value."""
        return self.best_value is not None and not self.status.startswith(("diverged", "error"))


def report(exp: Experiment, results: Any, tune_trials: dict[str, Any], *, wall_time_sec: float,
           resumed: bool) -> dict[str, Any]:
    """Print the ranked table, write the summary and best config, print the next commands.

    `tune_trials` maps trial ids to Tune's Trial objects; a trial that is neither TERMINATED
    nor ERROR (Ctrl-C) marks the search as interrupted: no best config, a --resume hint.
    """
    trials = rank([trial_record(exp, r, tune_trials) for r in results], exp.space.mode)
    reference = _reference_params(exp)
    for t in trials:
        t.is_reference = t.params == reference
    print(format_table(trials, exp), flush=True)
    interrupted = len(trials) < exp.space.num_samples or any(t.status.startswith("unfinished") for t in trials)
    best = None if interrupted else next((t for t in trials if t.usable), None)
    summary = _summary(exp, trials, best, wall_time_sec, resumed)
    summary["interrupted"] = interrupted
    if best is not None:
        summary["best_config"] = write_best_config(exp, best)
    _write_text(exp, SUMMARY_FILE, json.dumps(summary, indent=1, default=_json_default))
    if interrupted:
        print(f"Search interrupted: {sum(not t.status.startswith('unfinished') for t in trials)} of "
              f"{exp.space.num_samples} trials finished. Continue it with:\n"
              f"  python -m abr_tune.search --resume {exp.path}", flush=True)
    else:
        _print_outcome(exp, best, summary)
    return summary


# ---------------------------------------------------------------- one trial

def trial_record(exp: Experiment, result: Any, tune_trials: dict[str, Any]) -> TrialRecord:
    space, metric = exp.space, exp.space.metric
    summary = _read_json(result, "train_summary.json")
    history = _history(result.metrics_dataframe, summary)
    scored = [(h[metric], h["epoch"]) for h in history if _finite(h.get(metric))]
    best = (min if space.mode == "min" else max)(scored, default=(None, None))
    trial_id = str((result.metrics or {}).get("trial_id") or _trial_id(result.path))
    tune_trial = tune_trials.get(trial_id)
    tune_status = tune_trial.status if tune_trial else "TERMINATED"
    params = dict(result.config or (tune_trial.config if tune_trial else {}))
    if tune_status not in ("TERMINATED", "ERROR"):
        status, stopped = f"unfinished ({tune_status.lower()}): --resume continues it", False
    else:
        status, stopped = _status(result, summary, history, space.scheduler.max_t)
    return TrialRecord(
        trial_id=trial_id, trial_dir=str(result.path),
        params=params, overrides=space.resolve(params), status=status,
        epochs_run=int(history[-1]["epoch"]) if history else 0, stopped_early=stopped,
        best_value=best[0], best_epoch=best[1], last_value=history[-1].get(metric) if history else None,
        best_checkpoint=_best_checkpoint(result, metric, space.mode),
        nodes=sorted({str(n) for n in _column(result.metrics_dataframe, "node_id")}), history=history)


def _trial_id(path: str) -> str:
    """Trial dirs are named trial_<id>_<params> (search.trial_dirname)."""
    return Path(path).name.split("_")[1]


def _history(df: Any, summary: Optional[dict]) -> list[dict[str, Any]]:
    """Per-epoch metrics, one row per epoch: Tune's results, completed by train_abr's own history.

    A worker killed just after a report can lose that report's row in Tune while its
    checkpoint (and so train_abr's restored history) still holds the epoch.
    """
    rows: dict[int, dict[str, Any]] = {}
    records = [] if df is None or "epoch" not in df else df.to_dict("records")
    for row in records + list((summary or {}).get("history") or []):
        if _finite(row.get("epoch")):
            epoch = int(row["epoch"])
            rows[epoch] = {**rows.get(epoch, {}), **{k: _clean(row[k]) for k in HISTORY_KEYS if k in row}}
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
    scored = [(m.get(metric), c) for c, m in (result.best_checkpoints or []) if _finite(m.get(metric))]
    if not scored:
        return None
    _, checkpoint = (min if mode == "min" else max)(scored, key=lambda s: s[0])
    return f"{checkpoint.path}/checkpoint.pt"


def _read_json(result: Any, name: str) -> Optional[dict]:
    try:
        with result.filesystem.open_input_stream(f"{result.path}/{name}") as f:
            return json.loads(f.read().decode())
    except (OSError, ValueError):
        return None


def _reference_params(exp: Experiment) -> Optional[dict[str, Any]]:
    points = exp.space.search.points_to_evaluate
    if "base" not in points:
        return None
    return exp.space.points_to_evaluate(from_dict(exp.space.base))[points.index("base")]


def rank(trials: list[TrialRecord], mode: str) -> list[TrialRecord]:
    """Usable trials by best value, then diverged/errored/unscored ones."""
    sign = 1.0 if mode == "min" else -1.0
    return sorted(trials, key=lambda t: (not t.usable, sign * t.best_value if t.usable else 0.0, t.trial_id))


# ---------------------------------------------------------------- table

def format_table(trials: list[TrialRecord], exp: Experiment) -> str:
    names = [p.name for p in exp.space.params]
    short = [short_name(n) for n in names]
    head = ["#", "trial", *short, f"best {exp.space.metric}", "last", "epochs", "early", "status"]
    rows = []
    for i, t in enumerate(trials, 1):
        params = [fmt_value(t.params[n]) if n in t.params else "-" for n in names]
        rows.append([str(i), t.trial_id + (" *" if t.is_reference else ""), *params, fmt_value(t.best_value),
                     fmt_value(t.last_value), str(t.epochs_run), "yes" if t.stopped_early else "no", t.status])
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    if any(t.is_reference for t in trials):
        lines.append("* the base config's own values (the reference to beat)")
    return "\n".join(["", f"Trials ranked by {exp.space.metric} ({exp.space.mode}):", *lines, ""])


def short_name(param: str) -> str:
    """'optim.lr' → 'lr'; 'model.d_model,model.n_heads' → 'd_model,n_heads'."""
    return ",".join(k.rsplit(".", 1)[-1] for k in param.split(","))


def fmt_value(value: Any) -> str:
    """A table cell: 4 significant digits for floats, "-" for None."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# ---------------------------------------------------------------- outputs

def rebase(path: Optional[str], old_root: str, new_root: Path) -> Optional[str]:
    """A path the summary stored under the experiment dir `old_root`, moved under `new_root`
    (an experiment copied from a cluster, or moved); other paths are returned unchanged."""
    root = old_root.rstrip("/")
    if path == root:
        return str(new_root)
    if path and path.startswith(root + "/"):
        return str(new_root / path[len(root) + 1:])
    return path


def write_best_config(exp: Experiment, best: TrialRecord) -> str:
    """A complete train config for the best params at the base's full length (space.base keeps
    the base's trainer.max_epochs; trials ran scheduler.max_t), on the device the trials used."""
    space = exp.space
    log_dir = str(exp.local_dir) if exp.local_dir else "runs/search_retrain/" + exp.name
    device = "cuda" if space.resources.gpus_per_trial > 0 else space.base.get("device", "auto")
    cfg = from_dict(apply_overrides(space.base, {
        **best.overrides, "log_dir": log_dir, "exp_name": RETRAIN_DIR, "device": device, "trainer.progress": True}))
    header = (f"# Best trial {best.trial_id} of search '{exp.name}': {space.metric} = {best.best_value:.6g} "
              f"at epoch {best.best_epoch} (trials ran <= {space.scheduler.max_t} epochs).\n"
              f"# Searched values: {json.dumps(best.overrides)}\n"
              f"# Re-train: python -m abr_tune.retrain --experiment {exp.path}\n")
    _write_text(exp, BEST_CONFIG_FILE, header + cfg.to_yaml())
    return f"{exp.path}/{BEST_CONFIG_FILE}"


def _summary(exp: Experiment, trials: list[TrialRecord], best: Optional[TrialRecord],
             wall_time_sec: float, resumed: bool) -> dict[str, Any]:
    reference = next((t for t in trials if t.is_reference), None)
    return {
        "name": exp.name, "experiment_dir": exp.path, "metric": exp.space.metric, "mode": exp.space.mode,
        "study": {"storage": f"sqlite:///{exp.study_db}", "study_name": exp.name},
        "wall_time_sec": round(wall_time_sec, 1), "resumed": resumed,
        "num_trials": len(trials), "num_stopped_early": sum(t.stopped_early for t in trials),
        "max_epochs": exp.space.scheduler.max_t,
        "best": _brief(best), "reference": _brief(reference),
        "trials": [asdict(t) for t in trials],
    }


def _brief(t: Optional[TrialRecord]) -> Optional[dict[str, Any]]:
    if t is None:
        return None
    keys = ("trial_id", "params", "overrides", "best_value", "best_epoch", "best_checkpoint", "status")
    return {k: getattr(t, k) for k in keys}


def _print_outcome(exp: Experiment, best: Optional[TrialRecord], summary: dict[str, Any]) -> None:
    print(f"Summary: {summary['num_trials']} trials, {summary['num_stopped_early']} stopped early by ASHA, "
          f"{summary['wall_time_sec']:.0f} s; {exp.path}/{SUMMARY_FILE}")
    if best is None:
        print(f"No trial finished with a finite {exp.space.metric}; see the statuses above.")
        return
    ref = summary["reference"]
    if ref and ref["best_value"] is not None and ref["trial_id"] != best.trial_id:
        print(f"Best {exp.space.metric} {best.best_value:.4g} vs {ref['best_value']:.4g} for the base config.")
    print(f"Best trial: {best.trial_id} {json.dumps(best.overrides)}\n"
          f"Best checkpoint: {best.best_checkpoint}\n"
          f"Best config: {summary['best_config']}\n"
          f"Re-train it at full length and test it:\n"
          f"  python -m abr_tune.retrain --experiment {exp.path}\n"
          f"TensorBoard: tensorboard --logdir {exp.path}\n"
          f"Optuna study: optuna-dashboard sqlite:///{exp.study_db}", flush=True)


def _write_text(exp: Experiment, name: str, text: str) -> None:
    if exp.local_dir is not None:
        (exp.local_dir / name).write_text(text)
        return
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(exp.path)
    with fs.open_output_stream(f"{root}/{name}") as out:
        out.write(text.encode())


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clean(value: Any) -> Any:
    """NaN (absent that epoch) and inf (diverged) → None so the JSON is valid; numpy → Python."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)
