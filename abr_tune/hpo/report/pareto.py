"""The report's Pareto-front section and outcome lines for a search with several objectives,
from `summary["pareto"]` (built by `hpo.front`: the search's trials, or the confirmed means over seeds)."""

from __future__ import annotations

from typing import Any, Optional

from ...formatting import fmt_value
from ..confirm import BASE_LABEL
from ..params import short_name
from ..space import SearchSpace

BETTER = {"min": "lower is better", "max": "higher is better"}


def objective_label(name: str, mode: str) -> str:
    """An axis or column label: the metric's name and which way it improves."""
    return f"{name} ({BETTER[mode]})"


def source_text(pareto: dict[str, Any]) -> str:
    if pareto["source"] == "confirmed":
        seeds = sorted({r.get("seeds") for r in pareto["rows"] if r.get("seeds")})
        each = f" over {', '.join(map(str, seeds))} seeds" if seeds else " over seeds"
        return f"the confirmed means{each} of the confirmation stage (one point per candidate)"
    return "the search's trials (each trial that ran to max_t and measured every objective, at its valued epoch)"


def constraints_text(pareto: dict[str, Any]) -> str:
    """Which constraints, and how many points they excluded (named)."""
    if not pareto["constraints"]:
        return "No constraints: every point is feasible."
    cons = ", ".join(f"`{c}`" for c in pareto["constraints"])
    bad = pareto["infeasible"]
    named = f": {', '.join(f'`{b}`' for b in bad)}" if bad else ""
    return f"Constraints {cons} excluded {len(bad)} of {len(pareto['rows'])} points{named}."


def outcome_lines(summary: dict[str, Any], space: SearchSpace, best: Optional[dict[str, Any]]) -> list[str]:
    """What the headline adds for several objectives: the rule that chose the best from the front,
    or, plainly, that no point meets the constraints."""
    pareto = summary.get("pareto")
    names = ", ".join(f"`{n}` ({m})" for n, m in zip(space.objectives, space.modes, strict=True))
    if pareto is None:
        return [f"{len(space.objectives)} objectives ({names}); no Pareto front: the search did not finish."]
    rows, front = pareto["rows"], pareto["front"]
    where = "confirmed means over seeds" if pareto["source"] == "confirmed" else "the search's trials"
    if pareto["chosen"] is None:
        if not rows:
            line = ("**No best trial: no trial ran to max_t with every objective measured**, so the Pareto "
                    "front has no point.")
        elif pareto["constraints"]:
            line = (f"**No point meets the constraints** ({', '.join(f'`{c}`' for c in pareto['constraints'])}): "
                    f"all {len(rows)} points from {where} are infeasible, so the Pareto front is empty and the "
                    "rule chooses nothing.")
        else:
            line = f"**No best**: none of the {len(rows)} points from {where} has every objective finite."
        if best is not None:
            line += f" `{best['trial_id']}` (the base config) is kept as the best config."
        return [line]
    chosen = next(r for r in rows if r["label"] == pareto["chosen"])
    others = ", ".join(f"{n} = {fmt_value(chosen['values'].get(n))}" for n in space.objectives[1:])
    return [f"Chosen from the Pareto front by the rule, {pareto['rule']}: `{pareto['chosen']}` "
            f"({others}); the front: {len(front)} of {len(rows)} points ({where}; objectives {names}). "
            + constraints_text(pareto)]


def pareto_blocks(summary: dict[str, Any], space: SearchSpace, figure: Any) -> list[tuple[str, Any]]:
    """The "Pareto front" section: source, rule, constraints, the table of every point, the figure."""
    pareto = summary.get("pareto")
    blocks: list[tuple[str, Any]] = [("h2", "Pareto front")]
    if pareto is None:
        return [*blocks, ("p", "No Pareto front: the search was interrupted before every trial finished.")]
    objectives = ", ".join(f"`{o['name']}` ({o['mode']})" for o in pareto["objectives"])
    chosen = (f"**Default best: `{pareto['chosen']}`**, {pareto['rule']}." if pareto["chosen"] else
              f"**No default best: no point meets the constraints** (the rule: {pareto['rule']}).")
    front = ", ".join(f"`{label}`" for label in pareto["front"]) or "none"
    blocks += [
        ("p", f"Objectives {objectives}; the first is the primary (ASHA stops trials on it). Points: "
              f"{source_text(pareto)}. A point is on the front when no other feasible point is at least as good "
              "on every objective and better on one."),
        ("p", f"{constraints_text(pareto)} {chosen}"),
        ("p", f"Front ({len(pareto['front'])} of {len(pareto['rows'])} points, best primary first): {front}."),
        ("table", front_table(pareto, space)),
    ]
    if pareto.get("unmeasured"):
        blocks.append(("p", f"Not points: {', '.join(f'`{u}`' for u in pareto['unmeasured'])} ran to max_t but "
                            "measured no finite value of every objective (e.g. no wave V found, so no latency "
                            "error)."))
    search = summary.get("pareto_search")
    if pareto["source"] == "confirmed" and search:
        blocks.append(("p", f"Before confirmation, the search's own front (one seed each) was "
                            f"{', '.join(f'`{x}`' for x in search['front']) or 'empty'}, its rule's choice "
                            f"`{search['chosen'] or 'none'}`."))
    blocks += [("h3", "The front, objective against objective"), ("skipped" if figure.skipped else "figure", figure)]
    return blocks


def front_table(pareto: dict[str, Any], space: SearchSpace) -> tuple[list[str], list[list[str]]]:
    """Every point, the front's members first (best primary first), then the others by primary."""
    names = [o["name"] for o in pareto["objectives"]]
    modes = [o["mode"] for o in pareto["objectives"]]
    extra = [c.metric for c in space.parsed_constraints() if c.metric not in names]
    params = [p.name for p in space.params]
    sign = 1.0 if modes[0] == "min" else -1.0
    order = {label: i for i, label in enumerate(pareto["front"])}
    rows = sorted(pareto["rows"], key=lambda r: (r["label"] not in order, order.get(r["label"], 0),
                                                 sign * _number(r["values"].get(names[0]))))
    head = ["trial", "on front", *(f"{n} ({m})" for n, m in zip(names, modes, strict=True)), *extra,
            *map(short_name, params), "feasible"]
    body = []
    for r in rows:
        label = f"`{r['label']}`" + (" (base)" if r.get("is_reference") and r["label"] != BASE_LABEL else "")
        label += " **chosen**" if r["label"] == pareto["chosen"] else ""
        body.append([label, "yes" if r["on_front"] else "", *(fmt_value(r["values"].get(n)) for n in names),
                     *(fmt_value(r["values"].get(n)) for n in extra),
                     *(fmt_value(r["params"].get(p)) for p in params), "yes" if r["feasible"] else "**no**"])
    return head, body


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("inf")
