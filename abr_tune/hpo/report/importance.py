"""Parameter importance from the persisted Optuna study (fANOVA)."""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..params import short_name
from ..space import SearchSpace
from .figures import Made

MIN_IMPORTANCE_TRIALS = 3  # fANOVA's forest needs a few finite points to split on


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
    """The importance figure for `study`'s trials with a finite best epoch, or the reason to skip it."""
    import optuna

    if space.multi or len(study.directions) > 1:
        return objectives_importance(study, space)
    metric = space.metric
    done = [t for t in (_at_best_epoch(t, space.mode) for t in study.trials) if t is not None]
    varied, why = _varied(done, space, metric)
    if not varied:
        return None, why
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


def _at_best_epoch(trial: Any, mode: str) -> Optional[Any]:
    """A COMPLETE trial (its value is its best epoch), or a PRUNED one as a COMPLETE copy valued at its
    best intermediate value: the values the ranked table ranks by. None for the others."""
    import optuna

    state = optuna.trial.TrialState
    if trial.state == state.COMPLETE:
        return trial if trial.value is not None and math.isfinite(trial.value) else None
    finite = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
    if trial.state != state.PRUNED or not finite:
        return None
    return optuna.trial.create_trial(state=state.COMPLETE, value=(min if mode == "min" else max)(finite),
                                     params=trial.params, distributions=trial.distributions)


def _evaluator() -> tuple[Any, str]:
    """fANOVA (a scikit-learn random forest: scikit-learn is a core dependency) and its name for captions."""
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"


def _importance_caption(space: SearchSpace, done: list[Any], varied: list[str], method: str) -> str:
    left_out = [p.name for p in space.params if p.name not in varied]
    caption = (f"{method} over the {len(done)} trials of the Optuna study with a finite value, each at its best "
               "epoch (the value the ranked table uses): completed trials as the study holds them, trials ASHA "
               "stopped early (PRUNED) at their best intermediate value; failed and diverged trials left out.")
    if left_out:
        caption += (f" Left out (sampled in only some trials, or one value only): "
                    f"{', '.join(f'`{n}`' for n in left_out)}.")
    return caption


# ---------------------------------------------------------------- several objectives

def _varied(done: list[Any], space: SearchSpace, scored: str) -> tuple[list[str], str]:
    """The searched params that took more than one value in the `done` trials, or why there are none."""
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return [], (f"too few completed trials for parameter importance: {len(done)} with a finite {scored}, "
                    f"at least {MIN_IMPORTANCE_TRIALS} needed")
    common = set.intersection(*(set(t.params) for t in done))
    varied = [p.name for p in space.params if p.name in common and len({repr(t.params[p.name]) for t in done}) > 1]
    if not varied:
        return [], "no searched parameter took more than one value in the completed trials: nothing to attribute"
    return varied, ""


def objectives_importance(study: Any, space: SearchSpace) -> Made:
    """One panel per objective: the importances for it over the COMPLETE trials (each valued at one epoch
    for every objective), the primary first; an objective they cannot be computed for says why in its panel."""
    names, modes = space.objectives, space.modes
    done = [t for t in study.trials if t.state.name == "COMPLETE" and t.values is not None
            and len(t.values) == len(names) and math.isfinite(t.values[0])]
    varied, why = _varied(done, space, f"{names[0]} (the primary objective)")
    if not varied:
        return None, why
    method = _evaluator()[1]
    results = [_one_objective(done, i, mode, varied) for i, mode in enumerate(modes)]
    if isinstance(results[0][0], str) and all(isinstance(r[0], str) for r in results):
        return None, f"Optuna could not compute importances for any objective ({results[0][0]})"
    return _objectives_figure(results, names, modes, varied, method), _objectives_caption(space, results, varied,
                                                                                         method)


def _one_objective(done: list[Any], index: int, mode: str, varied: list[str]) -> tuple[Any, int]:
    """({param: importance}, trials used) for objective `index`, or (why not, trials used)."""
    import optuna

    trials = [t for t in done if math.isfinite(t.values[index])]
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return f"{len(trials)} trials with a finite value, at least {MIN_IMPORTANCE_TRIALS} needed", len(trials)
    if len({t.values[index] for t in trials}) == 1:
        return f"the same value in all {len(trials)} trials: nothing to attribute", len(trials)
    single = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    single.add_trials([optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=t.values[index],
                                                 params=t.params, distributions=t.distributions) for t in trials])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.importance.get_param_importances(single, evaluator=_evaluator()[0], params=varied), \
                len(trials)
    except Exception as err:  # an evaluator that cannot fit these trials: a note in the panel, not a crash
        return f"not computed ({type(err).__name__}: {err})", len(trials)


def _objectives_figure(results: list[tuple[Any, int]], names: list[str], modes: list[str], varied: list[str],
                       method: str) -> Figure:
    from ...viz.grid import panel_grid

    primary = results[0][0] if isinstance(results[0][0], dict) else {}
    order = sorted(varied, key=lambda p: primary.get(p, 0.0))  # the primary's most important on top, everywhere
    fig, axes = panel_grid(len(names), (4.3, 1.5 + 0.42 * len(varied)), max_cols=3, sharey=True)
    for k, (ax, name, mode, (values, count)) in enumerate(zip(axes.flat, names, modes, results, strict=False)):
        title = f"{name} ({mode}{', primary' if k == 0 else ''})\n{count} trials"
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, 1.08)
        ax.set_yticks(range(len(order)), [short_name(p) for p in order], fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
        if isinstance(values, str):
            ax.text(0.5, 0.5, values, ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes,
                    color="0.3")
            continue
        shares = [values.get(p, 0.0) for p in order]
        ax.barh(range(len(order)), shares, color="tab:blue" if k == 0 else "tab:cyan", height=0.6)
        for y, share in enumerate(shares):
            ax.text(share + 0.02, y, f"{share:.2f}", va="center", fontsize=7)
        ax.set_xlabel("fraction of explained variance", fontsize=8)
    fig.suptitle(f"Parameter importance for each objective ({method})", fontsize=11)
    fig.tight_layout()
    return fig


def _objectives_caption(space: SearchSpace, results: list[tuple[Any, int]], varied: list[str], method: str) -> str:
    caption = (f"{method}, one panel per objective (the primary, `{space.objectives[0]}`, first; each panel sums "
               "to 1), over the COMPLETE trials of the multi-objective Optuna study, each valued at one epoch for "
               "every objective (user attribute `valued_epoch`). Trials ASHA stopped early hold no values in a "
               "multi-objective study and are left out, as are failed and diverged trials. Figures that show a "
               f"single metric use the primary, `{space.objectives[0]}`.")
    skipped = [f"`{n}` ({r[0]})" for n, r in zip(space.objectives, results, strict=True) if isinstance(r[0], str)]
    if skipped:
        caption += f" No importance for {'; '.join(skipped)}."
    left_out = [p.name for p in space.params if p.name not in varied]
    if left_out:
        caption += (" Left out (sampled in only some trials, or one value only): "
                    f"{', '.join(f'`{n}`' for n in left_out)}.")
    return caption
