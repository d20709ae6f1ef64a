"""The Pareto-front figure: objective against objective for every point of `summary["pareto"]`.

Two objectives: one panel, the front drawn as the step line that bounds what it dominates. Three
or more: the lower triangle of a pairwise grid, every pair once, the same points marked in every
panel (the front is over all objectives, so a member can look dominated in a single pair).
"""

from __future__ import annotations

from typing import Any, Optional

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from ...formatting import finite
from ...metrics_registry import worst_when_undefined
from .figures import BEST_COLOR, COMPLETED_COLOR, REFERENCE_EDGE, Made
from .pareto import objective_label

FRONT_COLOR = "tab:orange"
INFEASIBLE_COLOR = "0.55"
MAX_LABELLED = 8  # front members named next to their point; more would crowd the panels


def pareto_figure(pareto: Optional[dict[str, Any]]) -> Made:
    """The front of a search with several objectives, or why there is nothing to draw."""
    if pareto is None:
        return None, "no Pareto front: the search was interrupted before every trial finished"
    names = [o["name"] for o in pareto["objectives"]]
    rows, edged = _drawable(pareto["rows"], names)
    if not rows:
        return None, "no trial ran to max_t with every objective measured: no point to draw"
    modes = [o["mode"] for o in pareto["objectives"]]
    bounds = _bounds(pareto["constraints"])
    if len(names) == 2:
        fig, ax = plt.subplots(figsize=(8.0, 5.8))
        _panel(ax, rows, pareto, (0, 1), names, modes, bounds, step=True, labels=True)
        ax.set_xlabel(objective_label(names[0], modes[0]))
        ax.set_ylabel(objective_label(names[1], modes[1]))
        ax.legend(handles=_legend(rows, pareto, step=True, bound=bool(set(bounds) & set(names))), fontsize=8,
                  loc="best", framealpha=0.9)
    else:
        fig = _grid(rows, pareto, names, modes, bounds)
    where = "confirmed means over seeds" if pareto["source"] == "confirmed" else "the search's trials"
    bad = len(pareto["infeasible"])
    fig.suptitle(f"Pareto front from {where}: {len(pareto['front'])} of {len(rows)} points on the front"
                 + (f", {bad} infeasible" if pareto["constraints"] else ""), fontsize=11)
    for ax in fig.axes:  # say on the axis itself where the undefined values sit
        for get, put in ((ax.get_xlabel, ax.set_xlabel), (ax.get_ylabel, ax.set_ylabel)):
            if any(get().startswith(n) for n in edged):
                put(get() + "\n(top edge: no wave V found)")
    fig.tight_layout()
    edge = (f" Points on the top edge of a `{'`, `'.join(edged)}` axis found no wave V in any sample (an undefined "
            "latency error, counted as the worst)." if edged else "")
    return fig, _caption(pareto, len(names)) + edge


def _drawable(rows: list[dict[str, Any]], names: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows to draw, an undefined worst-when-undefined value (null in JSON) put just past the worst
    finite value on its axis; and the metrics where that happened."""
    edged = [n for n in names if worst_when_undefined(n) and any(r["values"].get(n) is None for r in rows)]
    edge = {}
    for n in edged:
        seen = [r["values"][n] for r in rows if finite(r["values"].get(n))]
        edge[n] = max(seen) * 1.1 if seen else 1.0
    out = []
    for r in rows:
        values = {**r["values"], **{n: edge[n] for n in edged if r["values"].get(n) is None}}
        if all(finite(values.get(n)) for n in names):
            out.append({**r, "values": values})
    return out, edged


def _grid(rows: list[dict[str, Any]], pareto: dict[str, Any], names: list[str], modes: list[str],
          bounds: dict[str, list[tuple[str, float]]]) -> Any:
    """Lower triangle: row r plots objective r + 1 against objective c (c <= r); the free corner holds the legend."""
    n = len(names) - 1
    fig, axes = plt.subplots(n, n, figsize=(3.9 * n + 0.6, 3.5 * n + 0.4), squeeze=False, sharex="col",
                             sharey="row")
    for r in range(n):
        for c in range(n):
            ax = axes[r, c]
            if c > r:
                ax.axis("off")
                continue
            _panel(ax, rows, pareto, (c, r + 1), names, modes, bounds, step=False, labels=True)
            if r == n - 1:
                ax.set_xlabel(objective_label(names[c], modes[c]), fontsize=9)
            if c == 0:
                ax.set_ylabel(objective_label(names[r + 1], modes[r + 1]), fontsize=9)
    axes[0, n - 1].legend(handles=_legend(rows, pareto, step=False, bound=bool(set(bounds) & set(names))),
                          fontsize=8, loc="upper right", framealpha=0.9)
    return fig


def _panel(ax: Any, rows: list[dict[str, Any]], pareto: dict[str, Any], pair: tuple[int, int], names: list[str],
           modes: list[str], bounds: dict[str, list[tuple[str, float]]], *, step: bool, labels: bool) -> None:
    i, j = pair
    xy = {r["label"]: (r["values"][names[i]], r["values"][names[j]]) for r in rows}
    front = [label for label in pareto["front"] if label in xy]
    feasible = [r for r in rows if r["feasible"] and not r["on_front"]]
    infeasible = [r for r in rows if not r["feasible"]]
    if feasible:
        ax.scatter(*zip(*(xy[r["label"]] for r in feasible), strict=True), s=36, color=COMPLETED_COLOR,
                   alpha=0.8, zorder=3)
    if infeasible:
        ax.scatter(*zip(*(xy[r["label"]] for r in infeasible), strict=True), s=42, marker="X",
                   color=INFEASIBLE_COLOR, zorder=2)
    if front:
        ax.scatter(*zip(*(xy[label] for label in front), strict=True), s=70, color=FRONT_COLOR,
                   edgecolors="black", linewidths=0.6, zorder=5)
    chosen = pareto.get("chosen")
    if chosen in xy:
        ax.scatter(*xy[chosen], marker="*", s=320, color=BEST_COLOR, edgecolors="black", linewidths=0.6, zorder=7)
    for r in rows:
        if r.get("is_reference"):
            ax.scatter(*xy[r["label"]], marker="s", s=170, facecolors="none", edgecolors=REFERENCE_EDGE, lw=1.3,
                       zorder=6)
    ax.margins(0.12)  # room for the labels beside the outermost points
    if step and front:
        _front_step(ax, [xy[label] for label in front], modes[i], modes[j])
    _constraint_lines(ax, bounds.get(names[i], []), "x")
    _constraint_lines(ax, bounds.get(names[j], []), "y")
    if labels:
        named = front if len(front) <= MAX_LABELLED else [label for label in front if label == chosen]
        named += [r["label"] for r in rows if r.get("is_reference") and r["label"] not in named]
        _annotate(ax, [(label, xy[label]) for label in named])
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)


def _annotate(ax: Any, points: list[tuple[str, tuple[float, float]]]) -> None:
    """Each label beside its point, moved up or down when it would overlap one already placed."""
    ax.get_xlim(), ax.get_ylim()  # the view limits settled before reading positions
    placed: list[tuple[float, float]] = []  # label anchors in points from the figure's corner
    scale = 72.0 / ax.figure.dpi
    for label, (x, y) in points:
        px, py = (v * scale for v in ax.transData.transform((x, y)))
        for dy in (5, -13, 15, -23, 25, -33):
            if all(abs(px - qx) > 45 or abs(py + dy - qy) > 9 for qx, qy in placed):
                break
        placed.append((px, py + dy))
        ax.annotate(label, (x, y), xytext=(6, dy), textcoords="offset points", fontsize=7, zorder=8)


def _front_step(ax: Any, points: list[tuple[float, float]], x_mode: str, y_mode: str) -> None:
    """The boundary of what the front dominates: a staircase through its members, run out to the axes' edges
    (worse in y from the member best in x, worse in x from the member best in y)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    points = sorted(points, key=lambda p: p[0] if x_mode == "min" else -p[0])  # best x first
    xs, ys = [points[0][0]], [y1 if y_mode == "min" else y0]
    for (xa, ya), (xb, _) in zip(points, points[1:], strict=False):
        xs += [xa, xb]
        ys += [ya, ya]
    xs += [points[-1][0], x1 if x_mode == "min" else x0]
    ys += [points[-1][1], points[-1][1]]
    ax.plot(xs, ys, color=FRONT_COLOR, lw=1.6, zorder=4)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def _constraint_lines(ax: Any, bounds: list[tuple[str, float]], axis: str) -> None:
    """A constraint on a plotted metric: a dashed line at its bound, the side it excludes shaded."""
    for op, bound in bounds:
        low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
        pad = 0.05 * ((high - low) or abs(bound) or 1.0)
        low, high = min(low, bound - pad), max(high, bound + pad)  # the bound in view
        span, line = (ax.axvspan, ax.axvline) if axis == "x" else (ax.axhspan, ax.axhline)
        line(bound, color="0.3", ls="--", lw=1.0, zorder=1)
        span(*((low, bound) if op == ">=" else (bound, high)), color="0.5", alpha=0.12, lw=0, zorder=0)
        (ax.set_xlim if axis == "x" else ax.set_ylim)(low, high)


def _bounds(constraints: list[str]) -> dict[str, list[tuple[str, float]]]:
    """`summary["pareto"]["constraints"]` ("metric >= 0.8") by metric."""
    out: dict[str, list[tuple[str, float]]] = {}
    for text in constraints:
        metric, op, bound = text.split()
        out.setdefault(metric, []).append((op, float(bound)))
    return out


def _legend(rows: list[dict[str, Any]], pareto: dict[str, Any], *, step: bool, bound: bool) -> list[Line2D]:
    handles = [Line2D([], [], ls="-" if step and pareto["front"] else "", marker="o", ms=8,
                      color=FRONT_COLOR, mec="black", label=f"Pareto front ({len(pareto['front'])})")]
    if any(r["feasible"] and not r["on_front"] for r in rows):
        handles.append(Line2D([], [], ls="", marker="o", color=COMPLETED_COLOR, label="feasible, dominated"))
    if any(not r["feasible"] for r in rows):
        handles.append(Line2D([], [], ls="", marker="X", ms=8, color=INFEASIBLE_COLOR,
                              label="infeasible (constraint missed)"))
    if pareto.get("chosen"):
        handles.append(Line2D([], [], ls="", marker="*", ms=15, color=BEST_COLOR, mec="black",
                              label=f"chosen: {pareto['chosen']}"))
    if any(r.get("is_reference") for r in rows):
        handles.append(Line2D([], [], ls="", marker="s", ms=11, mfc="none", mec=REFERENCE_EDGE, label="base config"))
    if bound:
        handles.append(Line2D([], [], ls="--", color="0.3", label="constraint bound (excluded side shaded)"))
    return handles


def _caption(pareto: dict[str, Any], count: int) -> str:
    where = ("confirmed means over seeds of the confirmation stage" if pareto["source"] == "confirmed" else
             "the search's trials that ran to max_t, each at its valued epoch")
    shape = ("The orange step line bounds the region the front dominates." if count == 2 else
             f"Every pair of the {count} objectives once; the front is over all {count}, so a member can look "
             "dominated in one pair.")
    cons = (f" Grey crosses miss a constraint ({', '.join(f'`{c}`' for c in pareto['constraints'])}); a "
            "constraint on a plotted metric is a dashed line, its excluded side shaded." if pareto["constraints"]
            else "")
    chosen = (f" Red star: `{pareto['chosen']}`, {pareto['rule']}." if pareto["chosen"] else
              " No point meets the constraints: nothing is chosen.")
    return (f"Each point is one of {where}. Orange: the Pareto front (feasible, no other point at least as good "
            f"on every objective); blue: feasible but dominated. {shape}{cons}{chosen} Black square: the base "
            "config. Axis labels say which way each metric improves.")
