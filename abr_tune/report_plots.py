"""The figures of a search report: learning curves with ASHA's rungs, params against the metric,
Optuna parameter importance, the best trial's samples.

Each maker returns `(figure, caption)`, or `(None, why it was skipped)`: a figure that cannot
be made (too few trials, no checkpoint) is a note in the report, never a crash. Trials are the
dicts of search_summary.json.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from .config import from_dict
from .errors import UserError
from .plots import GENERATED_COLOR, REFERENCE_COLOR, plt, waveform_grid  # Agg backend set in plots
from .search_report import short_name
from .space import Param, SearchSpace

BEST_COLOR = "tab:red"
COMPLETED_COLOR = "tab:blue"
STOPPED_COLOR = "0.6"
REFERENCE_EDGE = "black"
LOG_DISTS = ("loguniform", "qloguniform", "logint")
MIN_IMPORTANCE_TRIALS = 3  # fANOVA's forest needs a few finite points to split on
SAMPLE_CHUNK = 4  # conditions per DDIM call: the progress bar's step

Made = tuple[Optional[Figure], str]  # (figure, caption) or (None, why it was skipped)


def asha_rungs(max_t: int, grace_period: int, reduction_factor: float) -> list[int]:
    """Epochs where ASHA compares trials: grace·rf^k, the rungs Ray's ASHAScheduler builds
    (`int(log(max_t / grace) / log(rf) + 1)` of them), the last possibly at max_t."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [int(round(grace_period * reduction_factor**k)) for k in range(count)]


def trial_kind(trial: dict[str, Any], best_id: str | None) -> str:
    """best | diverged | failed | stopped | completed: how a trial is drawn."""
    status = str(trial["status"])
    if trial["trial_id"] == best_id:
        return "best"
    if status.startswith("diverged"):
        return "diverged"
    if status.startswith(("error", "unfinished", "no result")):
        return "failed"
    return "stopped" if trial["stopped_early"] else "completed"


def curve(trial: dict[str, Any], metric: str) -> tuple[list[int], list[float]]:
    points = [(h["epoch"], h[metric]) for h in trial["history"] if positive(h.get(metric))]
    return [p[0] for p in points], [p[1] for p in points]


def positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _log_y(ax: Any) -> None:
    """Log y axis with plain numbers (0.75, not 7.5×10⁻¹); minor ticks labelled within one decade."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    low, high = ax.get_ylim()
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain if high / low < 10 else NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=8)


def learning_curves(trials: list[dict[str, Any]], space: SearchSpace, best_id: str | None) -> Made:
    """`metric` against epoch for every trial (log y), ASHA rungs as vertical lines."""
    metric, s = space.metric, space.scheduler
    if not any(curve(t, metric)[0] for t in trials):
        return None, f"no trial reported a finite, positive `{metric}`: no curve to draw"
    fig, ax = plt.subplots(figsize=(8.5, 5.0))
    styles = {"completed": dict(color=COMPLETED_COLOR, lw=1.2, alpha=0.8, zorder=3),
              "stopped": dict(color=STOPPED_COLOR, lw=1.0, alpha=0.8, zorder=2),
              "diverged": dict(color=STOPPED_COLOR, lw=1.0, ls=":", zorder=2),
              "failed": dict(color=STOPPED_COLOR, lw=1.0, ls=":", zorder=2),
              "best": dict(color=BEST_COLOR, lw=2.6, zorder=5)}
    top = ax.get_xaxis_transform()  # x in epochs, y in axes fraction: labels above the top edge
    for t in trials:
        kind = trial_kind(t, best_id)
        epochs, values = curve(t, metric)
        ax.plot(epochs, values, marker="o", ms=3, **styles[kind])
        if t.get("is_reference") and epochs:
            ax.plot(epochs, values, color=REFERENCE_EDGE, lw=1.0, ls="--", zorder=6)  # visible over the best
    _log_y(ax)
    _mark_diverged(ax, trials, best_id)
    for k, epoch in enumerate(asha_rungs(s.max_t, s.grace_period, s.reduction_factor)):
        if epoch < s.max_t:
            ax.axvline(epoch, color="0.35", ls="--", lw=0.9, zorder=1)
            ax.text(epoch, 1.01, f"rung {k + 1}", transform=top, ha="center", va="bottom", fontsize=8)
    ax.axvline(s.max_t, color="0.35", lw=1.2, zorder=1)
    ax.text(s.max_t, 1.01, "max_t", transform=top, ha="center", va="bottom", fontsize=8)
    ax.set_xlim(0.5, s.max_t + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (normalised units, log scale)")
    ax.grid(alpha=0.3)
    ax.legend(handles=_curve_legend(trials, best_id), fontsize=8, loc="upper right", framealpha=0.9)
    fig.suptitle(f"Learning curves of {len(trials)} trials: {metric} ({space.mode}); ASHA rungs dashed", fontsize=11)
    fig.tight_layout()
    return fig, _curves_caption(space)


def _mark_diverged(ax: Any, trials: list[dict[str, Any]], best_id: str | None) -> None:
    """A × at the top edge at the epoch where each trial's loss became non-finite (no value to plot)."""
    epochs = [t["epochs_run"] for t in trials if trial_kind(t, best_id) == "diverged"]
    if not epochs:
        return
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * (high / low) ** 0.15)  # headroom: the marks sit above every curve
    top = ax.get_xaxis_transform()
    for epoch in sorted(set(epochs)):
        ax.plot(epoch, 0.96, marker="x", color="black", ms=9, mew=2, transform=top, clip_on=False, zorder=6)
        ax.text(epoch, 0.96, f"  {epochs.count(epoch)} diverged", transform=top, va="center", fontsize=8)


def _curves_caption(space: SearchSpace) -> str:
    s = space.scheduler
    rungs = [e for e in asha_rungs(s.max_t, s.grace_period, s.reduction_factor) if e < s.max_t]
    where = f"rungs at epoch {', '.join(map(str, rungs))} (dashed)" if rungs else "no rung before max_t"
    return (f"`{space.metric}` of every trial at every epoch (EMA weights, the same seeded validation draw "
            f"for all trials), log scale. ASHA keeps the best 1/{s.reduction_factor:g} of the trials reaching a rung: "
            f"{where}; max_t = {s.max_t} (solid). Best trial in red, trials stopped early in grey.")


def _params_caption(space: SearchSpace) -> str:
    return (f"Each point is a trial at its best `{space.metric}`; the x axis spans the searched range "
            "(log where the distribution is log). Choice values are categories (points jittered sideways). "
            "Hollow grey: stopped early by ASHA, so scored on fewer epochs.")


def _curve_legend(trials: list[dict[str, Any]], best_id: str | None) -> list[Line2D]:
    kinds = {trial_kind(t, best_id) for t in trials}
    handles = [Line2D([], [], color=BEST_COLOR, lw=2.6, label=f"best trial {best_id}")] if "best" in kinds else []
    if "completed" in kinds:
        handles.append(Line2D([], [], color=COMPLETED_COLOR, lw=1.2, label="ran to max_t"))
    if "stopped" in kinds:
        handles.append(Line2D([], [], color=STOPPED_COLOR, lw=1.0, label="stopped early by ASHA"))
    if kinds & {"diverged", "failed"}:
        handles.append(Line2D([], [], color=STOPPED_COLOR, ls=":", label="diverged (×) or failed"))
    if any(t.get("is_reference") for t in trials):
        handles.append(Line2D([], [], color=REFERENCE_EDGE, ls="--", label="base config"))
    return handles


def params_vs_metric(trials: list[dict[str, Any]], space: SearchSpace, best_id: str | None) -> Made:
    """One panel per searched param: its value against each trial's best metric (log y)."""
    scored = [t for t in trials if positive(t.get("best_value"))]
    if not scored:
        return None, f"no trial scored a finite, positive best `{space.metric}`: no point to draw"
    params = space.params
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(params):]:
        ax.set_visible(False)
    for ax, param in zip(axes.flat, params, strict=False):
        _param_panel(ax, param, scored, best_id, space.metric)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"best {space.metric} (log scale)")
    unscored = len(trials) - len(scored)
    note = f"; {unscored} trial(s) without a finite value not shown" if unscored else ""
    fig.suptitle(f"Searched parameters against each trial's best {space.metric}{note}", fontsize=11)
    handles = _param_legend(scored, best_id)
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=max(1, len(handles)), frameon=False)
    fig.tight_layout(rect=(0, 0.07 / rows, 1, 1))
    return fig, _params_caption(space)


def _param_panel(ax: Any, param: Param, trials: list[dict[str, Any]], best_id: str | None, metric: str) -> None:
    shown = [t for t in trials if param.name in t["params"]]
    labels = [str(v) for v in param.labels()]
    for t in shown:
        kind = trial_kind(t, best_id)
        x = _x_value(param, t["params"][param.name], labels, t["trial_id"])
        style = {"best": dict(marker="*", s=160, color=BEST_COLOR, zorder=5),
                 "stopped": dict(marker="o", s=36, facecolors="none", edgecolors=STOPPED_COLOR, zorder=2)}.get(
            kind, dict(marker="o", s=36, color=COMPLETED_COLOR, zorder=3))
        ax.scatter([x], [t["best_value"]], **style)
        if t.get("is_reference"):
            ax.scatter([x], [t["best_value"]], marker="s", s=110, facecolors="none", edgecolors=REFERENCE_EDGE,
                       zorder=4)
    _log_y(ax)
    ax.grid(alpha=0.3)
    if param.dist == "choice":
        ax.set_xticks(range(len(labels)), labels, rotation=20 if max(map(len, labels)) > 6 else 0, fontsize=8)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_xlabel(f"{short_name(param.name)} (choice)")
    else:
        log = param.dist in LOG_DISTS
        ax.set_xscale("log" if log else "linear")
        span = (param.low, param.high)
        pad = (span[1] / span[0]) ** 0.04 if log else 0.04 * (span[1] - span[0])
        ax.set_xlim(*((span[0] / pad, span[1] * pad) if log else (span[0] - pad, span[1] + pad)))
        ax.set_xlabel(f"{short_name(param.name)} ({param.dist}{', log scale' if log else ''})")
    title = param.name if len(param.name) <= 40 else short_name(param.name)
    where = f"\nwhen {param.when}: {len(shown)} of {len(trials)} trials" if param.when else ""
    ax.set_title(f"{title}{where}", fontsize=8)


def _x_value(param: Param, value: Any, labels: list[str], trial_id: str) -> float:
    """Numeric value, or the category's position with a small fixed jitter so points don't hide."""
    if param.dist != "choice":
        return float(value)
    jitter = (int(trial_id, 16) % 1000 / 1000 - 0.5) * 0.25 if _is_hex(trial_id) else 0.0
    return labels.index(str(value)) + jitter


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text.lower())


def _param_legend(trials: list[dict[str, Any]], best_id: str | None) -> list[Line2D]:
    kinds = {trial_kind(t, best_id) for t in trials}
    handles = []
    if "best" in kinds:
        handles.append(Line2D([], [], ls="", marker="*", ms=12, color=BEST_COLOR, label="best trial"))
    if "completed" in kinds:
        handles.append(Line2D([], [], ls="", marker="o", color=COMPLETED_COLOR, label="ran to max_t"))
    if "stopped" in kinds:
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec=STOPPED_COLOR,
                              label="stopped early (best before stop)"))
    if any(t.get("is_reference") for t in trials):
        handles.append(Line2D([], [], ls="", marker="s", ms=9, mfc="none", mec=REFERENCE_EDGE, label="base config"))
    return handles


def importance_figure(study: Any, evaluator: Any, params: list[str], metric: str, method: str) -> Figure:
    """Optuna's matplotlib importance bar chart, relabelled with short param names."""
    from optuna.visualization.matplotlib import plot_param_importances

    with plt.rc_context():  # Optuna switches matplotlib to its ggplot style: keep that inside this figure
        ax = plot_param_importances(study, evaluator=evaluator, params=params, target_name=metric)
    fig = ax.figure
    ax.set_title("", loc="left")  # Optuna's own title
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    ax.set_yticks(ax.get_yticks(), [short_name(t.get_text()) for t in ax.get_yticklabels()])
    ax.set_title(f"Parameter importance for {metric} ({method}, {len(study.trials)} trials)", fontsize=11)
    ax.set_xlabel(f"importance for {metric} (fraction of explained variance, sums to 1)")
    ax.set_ylabel("searched parameter")
    fig.set_size_inches(8.0, 1.6 + 0.55 * len(params))
    fig.tight_layout()
    return fig


def importance(storage: Optional[str], name: str, space: SearchSpace) -> Made:
    """fANOVA importances from the persisted Optuna study, or why there are none (never raises)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception as err:  # missing file, missing study, unreadable storage: a note, not a crash
        return None, f"the Optuna study '{name}' could not be opened from {storage} ({type(err).__name__}: {err})"
    return study_importance(study, space)


def study_importance(study: Any, space: SearchSpace) -> Made:
    """The importance figure for `study`'s completed finite trials, or the reason to skip it."""
    import optuna

    metric = space.metric
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
            and t.value is not None and math.isfinite(t.value)]
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return None, (f"too few completed trials for parameter importance: {len(done)} with a finite {metric}, "
                      f"at least {MIN_IMPORTANCE_TRIALS} needed")
    common = set.intersection(*(set(t.params) for t in done))
    varied = [p.name for p in space.params if p.name in common and len({repr(t.params[p.name]) for t in done}) > 1]
    if not varied:
        return None, "no searched parameter took more than one value in the completed trials: nothing to attribute"
    evaluator, method = _evaluator()
    in_memory = optuna.create_study(directions=study.directions)
    in_memory.add_trials(done)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fig = importance_figure(in_memory, evaluator, varied, metric, method)
    except Exception as err:  # an evaluator that cannot fit these trials: a note, not a crash
        return None, f"Optuna could not compute importances ({type(err).__name__}: {err})"
    return fig, _importance_caption(space, done, varied, method)


def _evaluator() -> tuple[Any, str]:
    import optuna

    try:
        import sklearn  # noqa: F401  (fANOVA fits a scikit-learn random forest)
    except ImportError:
        return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA; install scikit-learn for fANOVA"
    return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"


def _importance_caption(space: SearchSpace, done: list[Any], varied: list[str], method: str) -> str:
    left_out = [p.name for p in space.params if p.name not in varied]
    caption = (f"{method} over the {len(done)} trials of the Optuna study with a finite value. The study holds "
               "each trial's last reported value: for a trial stopped early by ASHA, its value at the rung where "
               "it was stopped.")
    if left_out:
        caption += (f" Left out (sampled in only some trials, or one value only): "
                    f"{', '.join(f'`{n}`' for n in left_out)}.")
    return caption


def best_trial_samples(best: Optional[dict[str, Any]], conditions: int, log: Callable[[str], None]) -> Made:
    """DDIM samples of the best trial's best checkpoint (EMA) against val references, or why not."""
    if conditions < 1:
        return None, "sampling skipped (--conditions 0)"
    if best is None:
        return None, "no best trial (the search was interrupted or no trial scored a finite value)"
    checkpoint = _best_checkpoint(best)
    if checkpoint is None:
        return None, f"the best trial's checkpoint is missing ({best.get('best_checkpoint')})"
    try:
        return _sample_figure(best, checkpoint, conditions, log)
    except (UserError, OSError) as err:
        return None, f"sampling the best trial failed: {err}"


def _best_checkpoint(trial: dict[str, Any]) -> Optional[Path]:
    """Tune's checkpoint at the best epoch, else train_abr's own _best.pt in the trial dir."""
    candidates = [trial.get("best_checkpoint"), f"{trial['trial_dir']}/train/checkpoints/train_best.pt"]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def _sample_figure(best: dict[str, Any], checkpoint: Path, conditions: int,
                   log: Callable[[str], None]) -> tuple[Figure, str]:
    import numpy as np
    from tqdm.auto import tqdm

    from .checkpoint import load_checkpoint
    from .data import prepare_splits
    from .evaluate import CheckpointSampler
    from .evaluation import pick_reference_indices

    state = load_checkpoint(checkpoint)
    cfg = from_dict(state["config"])
    cfg.device = "auto"  # the GPU if this machine has one, whatever the trial ran on
    val = prepare_splits(cfg.data).val
    if len(val) == 0:
        raise UserError(f"the val split is empty (data.split {cfg.data.split})")
    idx = pick_reference_indices(val, conditions, cfg.trainer.val_seed)
    idx = idx[np.argsort(val.static[idx, 1], kind="stable")]  # panels by rising intensity
    sampler = CheckpointSampler.load(state, cfg)
    d = cfg.diffusion
    log(f"sampling {len(idx)} conditions with trial {best['trial_id']}'s checkpoint (epoch {state.get('epoch')}, "
        f"EMA, DDIM {d.sample_steps} steps, eta {d.ddim_eta:g}, CFG {d.cfg_scale:g}) on {sampler.device}")
    generated = []
    with tqdm(total=len(idx), desc="abr-tune: report: DDIM sampling", unit="waveform", leave=False) as bar:
        for i, lo in enumerate(range(0, len(idx), SAMPLE_CHUNK)):
            chunk = val.static[idx[lo : lo + SAMPLE_CHUNK]]
            generated.append(sampler.generate(chunk, 1, d.cfg_scale, cfg.trainer.val_seed + i)[0])
            bar.update(len(chunk))
    fig = waveform_grid([(val.signals[idx], "reference (val split)", REFERENCE_COLOR),
                         (np.concatenate(generated), "generated (EMA, DDIM)", GENERATED_COLOR)],
                        val.static[idx], cfg.data.sample_rate_hz,
                        f"Best trial {best['trial_id']}: generated vs reference ABRs across intensities "
                        f"(checkpoint of epoch {state.get('epoch')})")
    caption = (f"Trial `{best['trial_id']}`'s checkpoint at epoch {state.get('epoch')} (best "
               f"{best.get('best_value'):.4g}), EMA weights, DDIM with {d.sample_steps} steps, eta "
               f"{d.ddim_eta:g}, CFG scale {d.cfg_scale:g}, one sample per condition (seeded), against the val-split "
               f"recording of the same condition; panels by rising intensity. Checkpoint: `{checkpoint}`.")
    return fig, caption
