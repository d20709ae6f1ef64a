"""Several objectives: constraints, the Pareto front and the rule that picks the default best.

A search with `metrics: [val/mse_v, sample/wave_v_latency_mae_ms, sample/detection_acc]`
optimises all three; the first is the *primary* (ASHA stops trials on it). Each trial is
valued at one epoch, the same for every objective: the epoch with the best primary value
among the epochs that measured every objective (sample metrics are measured on sampling
epochs only, always including the last).

A point is on the Pareto front when no other point is at least as good on every objective
and better on one. Constraints (`sample/detection_acc >= 0.9`) split points into feasible
and infeasible; the front is drawn from the feasible points only (Deb's rule: a feasible
point dominates every infeasible one, as in Optuna's constrained samplers). The default best
is the front member with the best primary value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import UserError
from ..formatting import finite, fmt_value
from ..metrics_registry import METRIC_RANGES, range_of, sampling_epoch, wave_of, worst_when_undefined

PICK_RULE = "the Pareto-front member (constraints met) with the best primary metric"


@dataclass(frozen=True)
class Constraint:
    """`<metric> <= bound` or `<metric> >= bound`."""

    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def violation(self, value: Optional[float]) -> float:
        """Optuna's convention: <= 0 when met, else by how much it is missed (inf when unmeasured)."""
        if not finite(value):
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def met(self, value: Optional[float]) -> bool:
        return self.violation(value) <= 0


_CONSTRAINT = re.compile(r"^\s*(\S+)\s*(<=|>=)\s*(\S+)\s*$")


def parse_constraint(text: Any) -> Constraint:
    """A constraint's text, checked: a reported metric, a finite bound inside the metric's range."""
    match = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if match is None:
        raise UserError(f"search space: constraint {text!r} must read '<metric> <= <number>' or "
                        "'<metric> >= <number>', e.g. 'sample/detection_acc >= 0.9'")
    metric, op, bound = match.groups()
    if range_of(metric) is None:
        raise UserError(f"search space: constraint {text!r} names {metric!r}, which is not reported; "
                        f"use one of {', '.join(METRIC_RANGES)} (wave metrics: of the species' primary wave)")
    try:
        value = float(bound)
    except ValueError:
        raise UserError(f"search space: constraint {text!r}: {bound!r} is not a number") from None
    low, high = range_of(metric)
    if not math.isfinite(value) or not low <= value <= high:
        raise UserError(f"search space: constraint {text!r}: the bound must be a finite number in "
                        f"[{low:g}, {high:g}], the range of {metric}")
    return Constraint(metric, op, value)


def dominates(a: list[float], b: list[float], modes: list[str]) -> bool:
    """a is at least as good as b on every objective and better on one."""
    better = False
    for x, y, mode in zip(a, b, modes, strict=True):
        x, y = (x, y) if mode == "min" else (-x, -y)
        if x > y:
            return False
        better = better or x < y
    return better


def front(points: list[list[float]], modes: list[str], feasible: Optional[list[bool]] = None) -> list[int]:
    """Indices of the non-dominated points among the feasible ones with every value finite."""
    ok = [all(finite(v) or v == math.inf for v in p) and (feasible is None or feasible[i])
          for i, p in enumerate(points)]
    candidates = [i for i in range(len(points)) if ok[i]]
    return [i for i in candidates if not any(dominates(points[j], points[i], modes) for j in candidates if j != i)]


def pick(points: list[list[float]], on_front: list[int], mode: str) -> Optional[int]:
    """The default best: the front member with the best first (primary) objective."""
    if not on_front:
        return None
    sign = 1.0 if mode == "min" else -1.0
    return min(on_front, key=lambda i: sign * points[i][0])


def objective_value(name: str, row: dict[str, Any]) -> Optional[float]:
    """The value a search uses for metric `name` of an epoch's `row`: finite as reported; the worst
    for a metric that is worst when undefined on a sampling epoch that left it undefined; else None."""
    value = row.get(name)
    if finite(value):
        return float(value)
    if worst_when_undefined(name) and sampling_epoch(row):
        return math.inf  # every such metric is minimised
    return None


def shown(name: str, value: Any) -> str:
    """A value for a table: "no wave V" (the metric's wave) for the worst value of an undefined latency error."""
    if worst_when_undefined(name) and value in (math.inf, None):
        return f"no wave {wave_of(name)}"
    return fmt_value(value)


def valued_epoch(history: list[dict[str, Any]], names: list[str], mode: str) -> Optional[dict[str, Any]]:
    """The history row a trial is valued at: best primary among the sampling epochs that measured
    every objective (a copy, each objective as `objective_value` gives it)."""
    rows = []
    for h in history:
        values = {n: objective_value(n, h) for n in names}
        if all(v is not None for v in values.values()) and finite(values[names[0]]):
            rows.append({**h, **values})
    if not rows:
        return None
    sign = 1.0 if mode == "min" else -1.0
    return min(rows, key=lambda h: (sign * h[names[0]], h.get("epoch", 0)))


def constraint_row(history: list[dict[str, Any]], objectives: list[str], constraints: list[Constraint],
                   mode: str) -> Optional[dict[str, Any]]:
    """The epoch a trial's constraints are judged at: its valued epoch among the epochs that measured
    every constraint metric (sample metrics: the sampling epochs); None when no epoch did (unmet)."""
    return valued_epoch(history, [*objectives, *dict.fromkeys(c.metric for c in constraints)], mode)
