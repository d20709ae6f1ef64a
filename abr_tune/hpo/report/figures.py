"""The figures of a search report: learning curves with ASHA's rungs and the searched params
against the metric (`importance` and `samples` hold the other two).

Each maker returns `(figure, caption)`, or `(None, why it was skipped)`: a figure that cannot
be made (too few trials, no checkpoint) is a note in the report, never a crash. Trials are the
dicts of search_summary.json.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from ...viz.grid import label_grid, panel_grid
from ..params import Param, short_name
from ..space import SearchSpace

BEST_COLOR = "tab:red"
COMPLETED_COLOR = "tab:blue"
STOPPED_COLOR = "0.6"
REFERENCE_EDGE = "black"
LOG_DISTS = ("loguniform", "qloguniform", "logint")

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
            f"{where}; max_t = {s.max_t} (solid). Best trial in red, trials stopped early in grey.{_primary(space)}")


def _params_caption(space: SearchSpace) -> str:
    return (f"Each point is a trial at its best `{space.metric}`; the x axis spans the searched range "
            "(log where the distribution is log). Choice values are categories (points jittered sideways). "
            "Hollow grey: stopped early by ASHA, so scored on fewer epochs." + _primary(space, valued=True))


def _primary(space: SearchSpace, valued: bool = False) -> str:
    """With several objectives, the figures of one metric show the primary: say so."""
    if not space.multi:
        return ""
    at = (" Each trial is at its valued epoch (the epoch every objective was measured at); trials stopped early "
          "have no valued epoch and are not shown.") if valued else ""
    return (f" With {len(space.objectives)} objectives this figure shows the primary, `{space.metric}` (ASHA "
            f"stops trials on it); the Pareto front section shows them all.{at}")


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
    fig, axes = panel_grid(len(params), (4.4, 3.6), max_cols=3)
    rows = axes.shape[0]
    for ax, param in zip(axes.flat, params, strict=False):
        _param_panel(ax, param, scored, best_id, space.metric)
    label_grid(axes, None, f"best {space.metric} (log scale)", fontsize=10)
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
