"""Warm-starting a new search from earlier experiments' best configurations.

Another dataset or a wider space makes an earlier search's *values* incomparable, but its best
*configurations* are still the best guesses to try first: each becomes a point the new search
evaluates before TPE proposes (`search.points_to_evaluate`, written to the new space.yaml).
A configuration is carried param by param: a value outside the new space's range is dropped
(Optuna samples that param instead), and a setting the new space does not search is named,
since the new search's base decides it. (`--extend` grows a search instead, with a Tune experiment
of its own inside it over the same study; see `abr_tune.hpo.plan.plan_extend`.)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..config import TrainConfig, get_key
from ..errors import UserError, notice
from ..formatting import fmt_value
from .layout import SUMMARY_FILE
from .space import SearchSpace
from .transfer import top_entries


def with_warm_start(space: SearchSpace, dirs: list[str], top: int, base_cfg: TrainConfig) -> SearchSpace:
    """`space` with the top configurations of each experiment in `dirs` added to its points."""
    if not 1 <= top <= 20:
        raise UserError(f"--warm-start-top {top} must be in [1, 20]")
    points, lines = list(space.search.points_to_evaluate), []
    for given in dirs:
        for label, point, dropped in _points(space, given, top, base_cfg):
            not_carried = f" (not carried: {'; '.join(dropped)})" if dropped else ""
            if not point:
                lines.append(f"{given} {label}: skipped, no value fits this space{not_carried}")
                continue
            if point in points:
                continue
            points.append(point)
            shown = ", ".join(f"{k}={fmt_value(v)}" for k, v in point.items())
            lines.append(f"{given} {label}: {shown}{not_carried}")
    notice(f"warm start: {len(points) - len(space.search.points_to_evaluate)} earlier configurations run first",
           lines)
    return dataclasses.replace(space, search=dataclasses.replace(space.search, points_to_evaluate=points))


def _points(space: SearchSpace, given: str, top: int, base_cfg: TrainConfig) -> list[tuple[str, dict, list[str]]]:
    summary = _finished_summary(given)
    out = []
    for entry in top_entries(summary, top)[:-1]:  # the last entry is the earlier search's base config
        point: dict[str, Any] = {}
        dropped: list[str] = []
        covered: set[str] = set()
        for p in space.params:
            if not all(k in entry.overrides for k in p.keys):
                continue
            values = [entry.overrides[k] for k in p.keys]
            value = values[0] if len(values) == 1 else values
            covered.update(p.keys)
            try:
                p.encode(value, "warm start")
            except UserError:
                dropped.append(f"{p.name}={fmt_value(value)} is outside this space's range")
                continue
            point[p.name] = value
        for key, value in entry.overrides.items():
            if key not in covered and _base_value(base_cfg, key) != value:
                dropped.append(f"{key}={fmt_value(value)} is not searched here (the base's "
                               f"{fmt_value(_base_value(base_cfg, key))} applies)")
        out.append((entry.label, point, dropped))
    return out


def _finished_summary(given: str) -> dict[str, Any]:
    path = Path(given).expanduser()
    try:
        summary = json.loads((path / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        raise UserError(f"--warm-start '{given}' is not a finished abr-tune search (no readable {SUMMARY_FILE}); "
                        "pass an experiment directory whose search ended") from None
    if summary.get("interrupted", True) or not summary.get("best"):
        raise UserError(f"--warm-start '{given}' has no best configuration yet (interrupted or no usable trial); "
                        f"finish it with --resume {given}, or pass another experiment")
    return summary


def _base_value(base_cfg: TrainConfig, key: str) -> Any:
    try:
        return get_key(base_cfg, key)
    except (KeyError, AttributeError, UserError):
        return None
