"""ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning") whose rungs
survive a restore.

Tune does not save its scheduler: a resumed or extended search starts ASHA with empty rungs,
so the first new trial to reach each rung would always be promoted, whatever the earlier
trials scored there. `RestoredASHA` refills the rungs from each restored trial's own
result.json when Tune adds it back, so new trials are cut against every earlier trial.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler

from .layout import TUNE_RESULT_FILE


class RestoredASHA(ASHAScheduler):
    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        bracket = self._trial_info[trial.trial_id]
        for epoch, value in reported(trial, self._time_attr, self._metric):
            bracket.on_result(trial, epoch, self._metric_op * value)


def reported(trial: Any, time_attr: str, metric: str) -> list[tuple[float, float]]:
    """(time, metric) of every finite result the trial logged before, first report of each time;
    none for a new trial (or one whose results live on remote storage only)."""
    if getattr(trial.storage, "trial_dir_name", None) is None:  # a new trial: no directory yet
        return []
    try:
        lines = (Path(trial.path) / TUNE_RESULT_FILE).read_text().splitlines()
    except (OSError, TypeError):  # never reported, or its directory is on remote storage
        return []
    seen: dict[float, float] = {}
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:  # the last line of a run that was killed mid-write
            continue
        t, value = row.get(time_attr), row.get(metric)
        if isinstance(t, (int, float)) and isinstance(value, (int, float)) and math.isfinite(value):
            seen.setdefault(float(t), float(value))
    return sorted(seen.items())
