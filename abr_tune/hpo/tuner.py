"""The Tune experiment: Optuna (TPE or random) proposes, ASHA stops weak trials, Tune runs them."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from ..config import TrainConfig, from_dict
from ..errors import UserError
from ..formatting import fmt_value, shell
from ..metrics_registry import sampled
from .layout import DATA_FILE, SPACE_FILE, Experiment, extension_dirs
from .params import short_name
from .space import SearchSpace
from .trial import run_trial


def trainable(space: SearchSpace, arrays: Any) -> Any:
    from ray import tune

    r = space.resources
    fn = tune.with_parameters(run_trial, space=space, arrays=arrays)
    return tune.with_resources(fn, {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial})


def new_tuner(exp: Experiment, arrays: Any) -> Any:
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from .scheduler import RestoredASHA, reported
    from .searcher import OptunaStudySearch
    from .tune_restore import ExperimentSearchGenerator

    s = exp.space
    s.bind(from_dict(s.base))
    sampler = make_sampler(s)
    exp.study_db.parent.mkdir(parents=True, exist_ok=True)
    # An extension's searcher opens the search's study: TPE proposes from every earlier trial, the study's
    # trial numbers continue, and the points to evaluate (the base, a warm start's) ran in the search already.
    searcher = OptunaStudySearch(
        db_path=exp.study_db, max_t=s.scheduler.max_t, constraints=tuple(s.parsed_constraints()),
        space=s.define_by_run, metric=s.objectives if s.multi else s.metric, mode=s.modes if s.multi else s.mode,
        sampler=sampler, study_name=exp.study_name,
        points_to_evaluate=None if exp.run else s.points_to_evaluate(from_dict(s.base)) or None)
    search_alg = ExperimentSearchGenerator(ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent))
    # ASHA times trials in epochs, its rungs seeded with the search's earlier Tune experiments' results (an
    # extension) and refilled on a restore; stop_last_trials=False: reaching max_t alone stops nothing,
    # trials end when train_abr returns (trainer.max_epochs = max_t).
    earlier = [(t.trial_id, reported(t, "epoch", s.metric)) for t in earlier_trials(exp)]
    scheduler = RestoredASHA(time_attr="epoch", max_t=s.scheduler.max_t, grace_period=s.scheduler.grace_period,
                             reduction_factor=s.scheduler.reduction_factor, stop_last_trials=False, earlier=earlier)
    return tune.Tuner(
        trainable(s, arrays),
        tune_config=tune.TuneConfig(
            metric=s.metric, mode=s.mode, search_alg=search_alg,
            scheduler=scheduler, num_samples=s.num_samples, trial_name_creator=trial_name,
            # A finished trial's worker runs the next one: torch, the package and its first
            # optimizer (which imports torch._dynamo) are loaded once per worker, ~2.6 s a trial.
            reuse_actors=True,
            trial_dirname_creator=trial_dirname),
        run_config=run_config(exp))


def make_sampler(space: SearchSpace) -> Any:
    """The space's Optuna sampler: TPE with its options (one or several objectives), NSGA-II, or random;
    the constrained ones read each trial's constraint violations."""
    import warnings

    import optuna

    from .searcher import constraint_values

    s = space.search
    constrained = constraint_values if space.constraints else None
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    with warnings.catch_warnings():  # Optuna marks these options experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=s.seed, population_size=s.population_size,
                                                 constraints_func=constrained)
        return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                          multivariate=s.multivariate, group=s.group, constant_liar=s.constant_liar,
                                          constraints_func=constrained)


def trial_name(trial: Any) -> str:
    """`<id> lr=0.001 stft_weight=0.15`: Tune's live table shows names, not searcher params."""
    params = " ".join(f"{short_name(k)}={_fmt(v)}" for k, v in (trial.config or {}).items())
    return f"{trial.trial_id} {params}".strip()


def trial_dirname(trial: Any) -> str:
    """`trial_<id>_lr=0.001,stft_weight=0.15`: TensorBoard lists runs by these names."""
    params = ",".join(f"{short_name(k)}={_fmt(v)}" for k, v in (trial.config or {}).items())
    return re.sub(r"[^\w.=,+-]", "", f"trial_{trial.trial_id}_{params}")[:120]


def _fmt(value: Any) -> str:
    return fmt_value(value, 3).replace(" ", "")


def run_config(exp: Experiment, *, stage: str | None = None) -> Any:
    """Tune's run config of the search, or of a later `stage` (e.g. the confirmation) inside its directory."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from ..tracking.search import search_callbacks

    return tune.RunConfig(
        name=stage or exp.tune_name, storage_path=exp.path if stage else exp.tune_storage,
        # Tune keeps a trial's 2 best checkpoints by the metric; a sample metric is missing from most epochs, which
        # Tune would log as an error each epoch and rank first, so those keep the 2 latest (the run's own best
        # checkpoint is train_abr's, in the trial directory).
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=2, checkpoint_score_order=exp.space.mode,
            checkpoint_score_attribute=None if sampled(exp.space.metric) else exp.space.metric),
        failure_config=tune.FailureConfig(max_failures=2), verbose=1,
        # Trial dirs (TensorBoard logs, train_summary.json) reach storage from any node.
        sync_config=tune.SyncConfig(sync_artifacts=True),
        # progress.csv and result.json, which ExperimentAnalysis reads; no Tune TensorBoard logger
        # (search.py turns the automatic ones off): each trial's own run logs to TensorBoard.
        # and the experiment's tracker (MLflow or W&B), when the search was started with --logger.
        callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), *search_callbacks(exp, stage)])


def load_data(space: SearchSpace) -> Any:
    """Load the dataset once for the object store (unless trials search data.* keys) and check
    that every batch size the space can propose fits its train split."""
    if any(k.startswith("data.") for p in space.params for k in p.keys):
        return None
    from ..data import load_arrays as load
    from ..data import prepare_splits

    base = from_dict(space.base)
    arrays = load(base.data)
    splits = prepare_splits(base.data, arrays)
    n_train = len(splits.train)
    n_val_subjects = len(set(splits.val.patient_id.tolist()))
    if "sample/c2st_acc" in space.objectives and n_val_subjects < 2:
        raise UserError(f"sample/c2st_acc needs the recordings of at least 2 validation subjects (its folds are "
                        f"grouped by subject); the validation split holds {n_val_subjects}: raise data.split's "
                        "validation fraction or use more subjects")

    def fits(cfg: TrainConfig) -> None:  # the rule train_abr applies when it sets up a run
        if cfg.loader.drop_last and cfg.loader.batch_size > n_train:
            raise UserError(f"loader.batch_size={cfg.loader.batch_size} exceeds the {n_train} recordings of "
                            "the train split; lower it or use more data")

    space.check(space.base, seed=space.search.seed, extra=fits)
    return arrays


def tune_paths(exp: Experiment) -> list[str]:
    """The search's Tune experiments up to the one `exp` runs: its own, then its extensions (`layout`)."""
    if not exp.run:
        return [exp.path]
    runs = extension_dirs(exp.local_dir) if exp.local_dir is not None else []
    runs = runs[:runs.index(exp.run)] if exp.run in runs else runs
    return [exp.path, *(f"{exp.path}/{r}" for r in runs), exp.tune_path]


def earlier_trials(exp: Experiment) -> list[Any]:
    """Tune's trials of the search's Tune experiments before the one `exp` runs (finished: `plan_extend`)."""
    from ray import tune

    return [t for path in tune_paths(exp)[:-1] for t in tune.ExperimentAnalysis(path).trials]


def tune_trials(exp: Experiment) -> dict[str, Any]:
    """Tune's trials of the whole search by id: their status is TERMINATED, ERROR, or PENDING/PAUSED after Ctrl-C."""
    from ray import tune

    return {t.trial_id: t for path in tune_paths(exp) for t in tune.ExperimentAnalysis(path).trials}


def earlier_results(exp: Experiment) -> list[Any]:
    """The results of the search's Tune experiments before the one `exp` runs, read the way Ray documents
    for a finished experiment (`Tuner.restore(path, trainable).get_results()`; nothing is run)."""
    from ray import tune

    from .tune_restore import restoring

    results: list[Any] = []
    with restoring(exp):  # the searcher in each tuner.pkl opens the study where it is now
        for path in tune_paths(exp)[:-1]:
            results += list(tune.Tuner.restore(path, trainable=trainable(exp.space, None)).get_results())
    return results


def write_space(exp: Experiment, *, quiet: bool = False) -> None:
    """space.yaml: the resolved space --resume and --extend read, in the directory of the Tune experiment
    `exp` runs (an extension's: its number of trials, its sampler seed)."""
    if not quiet:
        print(f"Experiment: {exp.path}\nTensorBoard: tensorboard --logdir {shell(exp.path)}\n"
              f"Optuna study: {exp.study_db} (study '{exp.study_name}')", flush=True)
    text = (f"# This extension's space: its {exp.space.num_samples} trials, its sampler seed; --resume reads it.\n"
            if exp.run else "# Resolved search space of this experiment (flags applied); --resume and --extend "
                            "read it.\n")
    text += yaml.safe_dump(exp.space.to_dict(), sort_keys=False)
    if exp.local_dir is None:
        import pyarrow.fs

        fs, root = pyarrow.fs.FileSystem.from_uri(exp.path)
        fs.create_dir(root)
        with fs.open_output_stream(f"{root}/{SPACE_FILE}") as out:
            out.write(text.encode())
        return
    run_dir = exp.run_dir
    assert run_dir is not None
    run_dir.mkdir(parents=True, exist_ok=True)  # the search's own: claimed (created empty) by the planning
    if not (exp.local_dir / DATA_FILE).exists():  # the data of the search's start; an extension keeps it
        from ..data.fingerprint import fingerprint

        (exp.local_dir / DATA_FILE).write_text(json.dumps(fingerprint(from_dict(exp.space.base).data), indent=1))
    partial = run_dir / f".{SPACE_FILE}.partial"
    partial.write_text(text)
    partial.replace(run_dir / SPACE_FILE)  # never half a space file

