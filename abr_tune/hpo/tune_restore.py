"""Restoring a Tune experiment where it lies now: the one place that writes Tune's search generator.

`restoring(exp)` names the experiment Tune is restoring (`--resume`: the search's own Tune experiment or
its latest extension, extend_K/): the searcher (`hpo.searcher`) then opens the search's own optuna.db,
and `ExperimentSearchGenerator` creates Tune's new trials in the directory the Tune experiment lies in now.

Tune offers no public way to do the second part: its `SearchGenerator` restores the experiment spec it
creates new trials from with the directory of the run that saved it (search_gen_state-*.json), and
`Tuner.restore` does not take it. `ExperimentSearchGenerator.set_state` hands Tune's `set_state` the saved
state with that spec's storage rewritten (`restored_state`): no private attribute is touched, but the
state's key (`experiment`) is Tune's, undocumented; checked against Ray 2.52.0 and 2.60.0.
tests/test_searcher.py fails when Tune's generator saves other keys, and tests/test_search_resume.py
(a copied and a moved experiment) when a restore stops honouring them. The number of trials is never
rewritten: `--extend` runs its trials in a Tune experiment of its own (`hpo.plan.plan_extend`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any, Optional

from ray.tune.search import SearchGenerator

from ..errors import UserError
from .layout import Experiment

_restoring: Optional[Experiment] = None  # the experiment Tune is restoring (see `restoring`)
# The key of the state Tune's SearchGenerator saves (`get_state`) that a restore rewrites.
EXPERIMENT = "experiment"


@contextlib.contextmanager
def restoring(exp: Experiment) -> Iterator[None]:
    """While Tune restores and runs `exp`: searchers open `exp`'s study and new trials go to
    `exp`'s directory, wherever the experiment was created (a URI experiment keeps its paths)."""
    global _restoring
    _restoring = exp
    try:
        yield
    finally:
        _restoring = None


def restored_experiment() -> Optional[Experiment]:
    """The experiment being restored (inside `restoring`), else None."""
    return _restoring


class ExperimentSearchGenerator(SearchGenerator):
    """Tune's SearchGenerator whose restored experiment spec creates new trials in the restored directory.

    Tune moves the trials it restores to the directory being restored, but the spec it creates
    new trials from comes back from search_gen_state-*.json naming the directory of the run that
    saved it; a copied experiment would then write its new trials' results there.
    """

    def add_configurations(self, experiments: Any) -> None:
        # Tune adds the experiment only when it starts one; during a restore it means Tune failed
        # to read the saved state and would run the whole search again in the same directory.
        if _restoring is not None:
            raise UserError(f"Tune could not restore the search in {_restoring.tune_path} (its error is logged above); "
                            "nothing was run")
        super().add_configurations(experiments)

    def set_state(self, state: dict) -> None:
        super().set_state(restored_state(state, _restoring))


def restored_state(state: dict[str, Any], exp: Optional[Experiment]) -> dict[str, Any]:
    """Tune's saved search-generator state with, for a local experiment, its new trials created in the
    directory of `exp`'s Tune experiment (`state` itself is left as it was)."""
    if exp is None or exp.local_dir is None or state[EXPERIMENT] is None:
        return state
    state = dict(state)
    experiment = state[EXPERIMENT] = copy.copy(state[EXPERIMENT])
    storage = copy.copy(experiment.spec["storage"])
    storage.storage_fs_path = exp.tune_storage
    storage.experiment_dir_name = exp.tune_name
    experiment.spec = {**experiment.spec, "storage": storage}
    experiment.storage = storage
    return state
