"""The Pareto front of a search with several objectives, from its trials or from their
confirmation over seeds (`summary["pareto"]`), and its table.

Only trials that ran to max_t and measured every objective are points: a trial ASHA stopped
was measured at an earlier epoch and is not comparable. The rule in `objectives.PICK_RULE`
picks the default best among the front members.
"""

from __future__ import annotations

from typing import Any, Optional

from ..formatting import fmt_value, table
from .layout import Experiment
from .objectives import PICK_RULE, front, pick, shown
from .params import short_name
from .results import TrialRecord


def search_front(exp: Experiment, trials: list[TrialRecord]) -> dict[str, Any]:
    """The front over the search's trials."""
    names = exp.space.objectives
    rows = [{"label": t.trial_id, "values": dict(t.objectives), "params": dict(t.params),
             "overrides": dict(t.overrides), "is_reference": t.is_reference}
            for t in trials if t.usable and all(n in t.objectives for n in names)]
    pareto = front_of(rows, exp, source="search")
    # Ran to max_t but an objective came out undefined (e.g. no wave V found: no latency error).
    pareto["unmeasured"] = [t.trial_id for t in trials if not t.stopped_early and not t.usable
                            and not t.status.startswith(("diverged", "error", "unfinished"))]
    return pareto


def front_of(rows: list[dict[str, Any]], exp: Experiment, *, source: str) -> dict[str, Any]:
    """`rows` (label, values by metric, params, ...) with feasibility and front membership, the front
    in primary order, and the member the rule picks."""
    names, modes = exp.space.objectives, exp.space.modes
    constraints = exp.space.parsed_constraints()
    for r in rows:
        r["feasible"] = all(c.met(r["values"].get(c.metric)) for c in constraints)
    points = [[r["values"][n] for n in names] for r in rows]
    on = front(points, modes, [r["feasible"] for r in rows])
    sign = 1.0 if modes[0] == "min" else -1.0
    on_sorted = sorted(on, key=lambda i: sign * points[i][0])
    for i, r in enumerate(rows):
        r["on_front"] = i in on
    chosen = pick(points, on, modes[0])
    return {"source": source, "objectives": [{"name": n, "mode": m} for n, m in zip(names, modes, strict=True)],
            "constraints": [str(c) for c in constraints], "rule": PICK_RULE, "rows": rows,
            "front": [rows[i]["label"] for i in on_sorted],
            "infeasible": [r["label"] for r in rows if not r["feasible"]],
            "chosen": rows[chosen]["label"] if chosen is not None else None}


def format_front(pareto: dict[str, Any], exp: Experiment) -> str:
    """The front as a table: each member's objectives and searched values, the chosen one marked."""
    names = [o["name"] for o in pareto["objectives"]]
    params = [p.name for p in exp.space.params]
    by_label = {r["label"]: r for r in pareto["rows"]}
    head = ["trial", *(f"{n} ({m[:3]})" for n, m in zip(names, (o["mode"] for o in pareto["objectives"]),
                                                          strict=True)), *map(short_name, params)]
    body = []
    for label in pareto["front"]:
        r = by_label[label]
        mark = " <- chosen" if label == pareto["chosen"] else ""
        body.append([label + (" *" if r.get("is_reference") else "") + mark,
                     *(shown(n, r["values"][n]) for n in names),
                     *(fmt_value(r["params"][p]) if p in r["params"] else "-" for p in params)])
    lines = table([head, *body])
    where = "confirmed means over seeds" if pareto["source"] == "confirmed" else "the search's trials"
    constraints = f"; constraints {', '.join(pareto['constraints'])}: {len(pareto['infeasible'])} of " \
                  f"{len(pareto['rows'])} excluded" if pareto["constraints"] else ""
    unmeasured = pareto.get("unmeasured") or []
    unmeasured_line = [f"Not points: {', '.join(unmeasured)} ran to the end but measured no finite value of "
                       "every objective (e.g. no wave V found, so no latency error)"] if unmeasured else []
    out = [f"Pareto front from {where} ({len(pareto['front'])} of {len(pareto['rows'])} points{constraints}):",
           *(lines if pareto["front"] else []), *unmeasured_line,
           f"Default best, {pareto['rule']}: {pareto['chosen'] or 'none (no point meets the constraints)'}"]
    return "\n".join(["", *out, ""])


def chosen_record(pareto: dict[str, Any], trials: list[TrialRecord]) -> Optional[TrialRecord]:
    return next((t for t in trials if t.trial_id == pareto["chosen"]), None)
