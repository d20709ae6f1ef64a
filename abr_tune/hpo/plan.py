"""Planning a search before Ray starts: the space file and flags resolved into an Experiment,
everything a user can get wrong checked first."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Optional

from ..config import TrainConfig, apply_overrides, from_dict, parse_overrides
from ..errors import UserError
from ..paths import unwritable
from .layout import (
    DATA_FILE,
    EXTEND_DIR,
    SPACE_FILE,
    STUDY_FILE,
    SUMMARY_FILE,
    Experiment,
    extension_dirs,
    tune_state_problem,
)
from .lock import lock_experiment, release_experiment
from .space import SearchSpace
from .space_file import check_settings, load_space, refuse_searched, with_metrics
from .study import study_name
from .summary import resumed_stage
from .trial_base import trial_base
from .warm_start import with_warm_start

# --smoke-test: a tiny model on a tiny dataset, so a whole search takes seconds per trial.
SMOKE_OVERRIDES = {
    "data.synthetic.n_subjects": 12, "data.synthetic.recordings_per_subject": 4,
    "model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.ff_mult": 2,
    "loader.batch_size": 16, "loader.drop_last": False,  # a searched batch size may exceed the tiny split
    "diffusion.sample_steps": 5, "trainer.max_epochs": 2,
    "trainer.sample_every_epochs": 2, "viz.num_samples": 2, "viz.plot_spectrogram": False,
    "advanced.lr_warmup_steps": 0,
}
# ... and, on a recordings file (where data.synthetic.* does nothing), the recordings of 8 of its subjects,
# 2 of them for validation: the sample C2ST's folds are grouped by subject and need two.
SMOKE_FILE_OVERRIDES = {"data.max_subjects": 8, "data.split": [0.5, 0.25, 0.25]}
SMOKE_SETTINGS = {"num_samples": 4, "max_concurrent": 2, "max_t": 2, "grace_period": 1}
SMOKE_CONFIRM = {"top_k": 1, "seeds": 2}  # at most: a confirming space confirms its winner over 2 seeds


def plan_new(args: argparse.Namespace) -> Experiment:
    """Resolve space + flags into a validated experiment; raises UserError, starts nothing."""
    if not args.space:
        raise UserError("--space is required (e.g. --space search_spaces/lr_stft.yaml), or --resume DIR")
    space = load_space(args.space)
    base = space.base_raw()
    if args.smoke_test:  # shrink what the space does not search; its own ranges stay as written
        searched = {k for p in space.params for k in p.keys}
        base = apply_overrides(base, {k: v for k, v in SMOKE_OVERRIDES.items() if k not in searched})
    if args.override:
        overrides = parse_overrides(args.override)
        refuse_searched(overrides, space, "--override")
        base = apply_overrides(base, overrides)
    if args.smoke_test and (base.get("data") or {}).get("source") == "file":
        base = apply_overrides(base, SMOKE_FILE_OVERRIDES)
    base_cfg = from_dict(_absolute_data_path(base))
    space = _apply_flags(space, args, base_cfg)
    if args.warm_start_top is not None and not args.warm_start:
        raise UserError("--warm-start-top needs --warm-start DIR (the experiment to start from)")
    if args.warm_start_top is not None and not 1 <= args.warm_start_top <= 100:
        raise UserError(f"--warm-start-top must be between 1 and 100, got {args.warm_start_top}")
    if args.warm_start:
        space = with_warm_start(space, args.warm_start, args.warm_start_top or 3, base_cfg)
    space.check(base_cfg.to_dict(), seed=space.search.seed)
    name = args.name or f"{Path(args.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp = Experiment(space, _check_name(name), _storage_path(args.storage_path))
    if exp.local_dir is not None and exp.local_dir.exists():
        raise _exists(exp)
    return exp


def claim(exp: Experiment) -> None:
    """Create the experiment directory, failing if it exists: the lock that keeps two searches
    started with the same --name apart (the check in plan_new alone races)."""
    if exp.local_dir is None:
        return
    exp.local_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        exp.local_dir.mkdir()
    except FileExistsError:
        raise _exists(exp) from None
    lock_experiment(exp.local_dir, "start the search")


def _exists(exp: Experiment) -> UserError:
    return UserError(f"experiment '{exp.path}' already exists; pass --resume {exp.path} to continue it "
                     "or --name to start a new one")


def release(exp: Experiment) -> None:
    """Undo `claim` when the search failed before writing anything into the directory."""
    if exp.local_dir is not None:
        if any(exp.local_dir.iterdir()):
            return  # something was written: keep it (and the lock, held until the process ends)
        release_experiment(exp.local_dir)
        with contextlib.suppress(OSError):
            exp.local_dir.rmdir()


def _apply_flags(space: SearchSpace, args: argparse.Namespace, base_cfg: TrainConfig) -> SearchSpace:
    """The space with the base inlined and --smoke-test, then explicit flags, over its settings."""
    flags = {"num_samples": args.num_samples, "max_concurrent": args.max_concurrent, "max_t": args.max_epochs,
             "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
             "seed": args.seed, "top_k": args.confirm_top, "seeds": args.confirm_seeds}
    smoke = {**SMOKE_SETTINGS, **{k: min(v, getattr(space.confirm, k)) for k, v in SMOKE_CONFIRM.items()}}
    given = {**(smoke if args.smoke_test else {}), **{k: v for k, v in flags.items() if v is not None}}
    max_t = given.get("max_t", space.scheduler.max_t or base_cfg.trainer.max_epochs)
    grace = min(given.get("grace_period", space.scheduler.grace_period), max_t)
    r = space.resources
    resolved = dataclasses.replace(
        space, base_config=None, base=trial_base(base_cfg), overrides={},
        **(with_metrics(args.metric) if args.metric else {}),  # --metric replaces the space's objectives
        num_samples=given.get("num_samples", space.num_samples),
        max_concurrent=given.get("max_concurrent", space.max_concurrent),
        scheduler=dataclasses.replace(space.scheduler, max_t=max_t, grace_period=grace),
        resources=dataclasses.replace(r, cpus_per_trial=given.get("cpus_per_trial", r.cpus_per_trial),
                                      gpus_per_trial=given.get("gpus_per_trial", r.gpus_per_trial)),
        search=dataclasses.replace(space.search, seed=given.get("seed", space.search.seed)),
        confirm=dataclasses.replace(space.confirm, top_k=given.get("top_k", space.confirm.top_k),
                                    seeds=given.get("seeds", space.confirm.seeds)))
    check_settings(resolved)
    return resolved


def _absolute_data_path(raw: dict[str, Any]) -> dict[str, Any]:
    """Trials run in their own working directories: pin a relative data.path to the CWD."""
    path = (raw.get("data") or {}).get("path")
    if isinstance(path, str) and path and not Path(path).is_absolute():
        return apply_overrides(raw, {"data.path": str(Path(path).resolve())})
    return raw


MAX_NAME = 100  # file names hold 255 bytes; Tune's trial and checkpoint names are built on the experiment's


def _check_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise UserError(f"--name {name!r} must be a plain directory name (no '/')")
    if len(name.encode()) > MAX_NAME:
        raise UserError(f"--name is {len(name.encode())} bytes long; give at most {MAX_NAME}")
    return name


def _storage_path(value: str) -> str:
    """A URI as given, else an absolute local path whose nearest existing part is a writable directory."""
    if "://" in value:
        return value
    path = Path(value).expanduser().resolve()
    blocked = unwritable(path)
    if blocked:
        raise UserError(f"--storage-path '{value}' cannot hold experiments: '{blocked[0]}' {blocked[1]}; "
                        "pass a writable directory")
    return str(path)


def plan_resume(args: argparse.Namespace) -> Experiment:
    """The experiment in --resume DIR, after checking it is one; search-shaping flags are refused.

    A search that was extended continues its latest Tune experiment (DIR/extend_K/): the earlier ones
    are finished (an extension starts from a finished search only), the latest may not be.
    """
    path = _restorable(args.resume)
    _refuse(args, SHAPING + ("confirm_top", "confirm_seeds", "num_samples", "max_concurrent"),
            f"cannot change a search being resumed; it continues with the settings in {path / SPACE_FILE}")
    exp = latest(path)
    problem = tune_state_problem(exp.run_dir) if exp.run and any(exp.run_dir.glob("experiment_state-*")) else None
    if problem:
        raise UserError(f"{problem}; this extension cannot be resumed. Its finished trials are kept in {STUDY_FILE} "
                        f"and their trial directories; start a new search with --space (--warm-start {path})")
    return exp


def plan_extend(args: argparse.Namespace) -> Experiment:
    """A new Tune experiment, DIR/extend_K/, of --num-samples more trials (default: as many as the search
    has) over the finished search in --extend DIR and its study; its space.yaml is written just before Ray
    starts (`search.extend_space`). --max-concurrent and the confirmation flags carry to later extensions."""
    path = _restorable(args.extend)
    _refuse(args, SHAPING, f"cannot change the space of a search being extended (its settings are in "
                           f"{path / SPACE_FILE}); start a new search with --space (and --warm-start {path})")
    last = latest(path)
    summary = _summary(path)
    if not _complete(summary, last):
        raise UserError(f"'{args.extend}' is not a finished search; continue it with --resume {path} first")
    more = summary["num_trials"] if args.num_samples is None else args.num_samples
    if more < 1:
        raise UserError(f"--num-samples {more}: an extension adds at least 1 trial")
    index = len(extension_dirs(path)) + 2
    seed = load_space(path / SPACE_FILE).search.seed
    # its own sampler seed: the search's seed would draw the random sampler's first points again
    search = dataclasses.replace(last.space.search, seed=None if seed is None else seed + index - 1)
    flags = {"num_samples": more, "max_concurrent": args.max_concurrent}
    confirm = {"top_k": args.confirm_top, "seeds": args.confirm_seeds}
    space = dataclasses.replace(
        last.space, **{k: v for k, v in flags.items() if v is not None}, search=search,
        confirm=dataclasses.replace(last.space.confirm, **{k: v for k, v in confirm.items() if v is not None}))
    check_settings(space)
    return Experiment(space, last.name, last.storage_path, study_name=last.study_name, run=f"{EXTEND_DIR}_{index}",
                      earlier_samples=last.total_samples)


# Flags that shape what a search searches: fixed once it has started.
SHAPING = ("space", "max_epochs", "cpus_per_trial", "gpus_per_trial", "override", "metric", "seed", "name",
           "warm_start", "warm_start_top")


def _restorable(given: str) -> Path:
    path = Path(given).expanduser().resolve()
    if path.is_dir() and not (path / SPACE_FILE).is_file() and not any(path.glob("experiment_state-*")):
        raise UserError(f"'{given}' is not an abr-tune search experiment yet (no {SPACE_FILE}): a search was stopped "
                        "before writing it, or one is starting there now; if none is running, remove the directory "
                        "and start the search again with --space")
    if not (path / SPACE_FILE).is_file() or not _can_restore(path):
        raise UserError(f"'{given}' is not an abr-tune search experiment (no {SPACE_FILE} and Tune state); "
                        "pass the experiment directory printed when the search started")
    problem = tune_state_problem(path)
    if problem:
        raise UserError(f"{problem}; this search cannot be resumed. Its finished trials are kept in {STUDY_FILE} "
                        "and their trial directories; start a new search with --space")
    return path


def _refuse(args: argparse.Namespace, names: tuple[str, ...], why: str) -> None:
    given = [n for n in names if getattr(args, n, None) is not None]
    given += ["smoke_test"] if args.smoke_test else []
    if given:
        raise UserError(f"{', '.join('--' + n.replace('_', '-') for n in given)} {why}")


def _experiment(path: Path) -> Experiment:
    exp = Experiment(load_space(path / SPACE_FILE), path.name, str(path.parent),
                     study_name=study_name(path / STUDY_FILE, path.name))
    _check_data(exp, path)
    return exp


def latest(path: Path) -> Experiment:
    """The search in `path` as its latest Tune experiment: the search's own, or its last extension."""
    exp = _experiment(path)
    for run in extension_dirs(path):
        exp = Experiment(load_space(path / run / SPACE_FILE), exp.name, exp.storage_path, study_name=exp.study_name,
                         run=run, earlier_samples=exp.total_samples)
    return exp


def _check_data(exp: Experiment, path: Path) -> None:
    """The trials continue on the data the search started on, or not at all (data.fingerprint)."""
    from ..data.fingerprint import check_same_data

    try:
        saved = json.loads((path / DATA_FILE).read_text())
    except (OSError, ValueError):  # an experiment from before fingerprints were recorded
        return
    check_same_data(saved, from_dict(exp.space.base).data, f"experiment '{path}'",
                    f"start a new search on the new data with --space (--warm-start {path} runs its best "
                    "configurations first)")


def previous_summary(exp: Experiment) -> Optional[dict[str, Any]]:
    """The summary an earlier run of this experiment wrote (None: none, or unreadable)."""
    return _summary(Path(exp.path)) if exp.local_dir is not None else None


def _summary(path: Path) -> Optional[dict[str, Any]]:
    try:
        return json.loads((path / SUMMARY_FILE).read_text())
    except (OSError, ValueError):  # never finished, or its summary is unreadable: Tune's state decides
        return None


def _complete(summary: Optional[dict[str, Any]], exp: Experiment) -> bool:
    """The search ran every trial and its confirmation (when it has one) gave its verdict."""
    if summary is None or summary.get("interrupted", True) or summary.get("num_trials", 0) < exp.total_samples:
        return False
    return resumed_stage(summary) is None


def finished(exp: Experiment) -> Optional[str]:
    """What to tell a user who resumes a search that has finished (None when it has not)."""
    summary = _summary(Path(exp.path))
    if not _complete(summary, exp):
        return None
    return (f"abr-tune: experiment '{exp.path}' already finished ({summary.get('num_trials')} trials); "
            f"nothing to resume. Its results: {exp.path}/{SUMMARY_FILE}; add trials with --extend {exp.path}, "
            "or start another search with --space")


def _can_restore(path: Path) -> bool:
    from ray import tune

    return tune.Tuner.can_restore(str(path))
