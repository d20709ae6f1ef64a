"""`python -m abr_tune.search`: Ray Tune drives train_abr with Optuna TPE and ASHA (DESIGN §7).

The only module (with search_report.py) that imports Ray Tune. A trial is a thin adapter
over train_abr: `TuneReporter` turns each epoch into one `tune.report` with a checkpoint
and hands `tune.get_checkpoint()` back to train_abr when Tune restarts or resumes a trial.
Everything a user can get wrong is checked before Ray starts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from .config import TrainConfig, apply_overrides, from_dict, parse_overrides
from .errors import CliParser, UserError, cli_entry
from .reporting import StopRun
from .search_cluster import check_address, check_dashboard, check_local_resources, check_resources, start_ray
from .search_report import STOPPED_EARLY, report, short_name
from .space import METRIC_MODES, SearchSpace, check_settings, load_space

SPACE_FILE = "space.yaml"  # the resolved space (inline base, flags applied): what --resume reads
STUDY_FILE = "optuna.db"  # the Optuna study (SQLite), readable by optuna-dashboard
TRIAL_SUMMARY_FILE = "train_summary.json"  # train_abr's summary, written in each finished trial dir
# --smoke-test: a tiny model on a tiny dataset, so a whole search takes seconds per trial.
SMOKE_OVERRIDES = {
    "data.synthetic.n_subjects": 12, "data.synthetic.recordings_per_subject": 4,
    "model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.ff_mult": 2,
    "loader.batch_size": 16, "loader.drop_last": False,  # a searched batch size may exceed the tiny split
    "diffusion.sample_steps": 5, "trainer.max_epochs": 2,
    "trainer.sample_every_epochs": 2, "viz.num_samples": 2, "viz.plot_spectrogram": False,
    "advanced.lr_warmup_steps": 0,
}
SMOKE_SETTINGS = {"num_samples": 4, "max_concurrent": 2, "max_t": 2, "grace_period": 1}


EXAMPLES = """examples:
  python -m abr_tune.search --space search_spaces/lr_stft.yaml            # the quick start (2 CPUs, ~5 min)
  python -m abr_tune.search --space search_spaces/lr_stft.yaml --smoke-test
  python -m abr_tune.search --resume runs/search/lr_stft-20260101-120000  # after Ctrl-C, a kill or a reboot
  python -m abr_tune.search --space search_spaces/architecture.yaml --address auto \\
      --storage-path /shared/abr_runs --gpus-per-trial 0.25              # on a `ray start --head` cluster
"""


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="python -m abr_tune.search", epilog=EXAMPLES,
                  formatter_class=argparse.RawDescriptionHelpFormatter,
                  description="Search train_abr hyperparameters with Ray Tune: Optuna TPE proposes, ASHA stops "
                              "weak trials early. Flags override the space file.")
    p.add_argument("--space", metavar="FILE", help="search-space YAML (e.g. search_spaces/lr_stft.yaml)")
    p.add_argument("--num-samples", type=int, metavar="N", help="number of trials")
    p.add_argument("--max-concurrent", type=int, metavar="N", help="trials running at once")
    p.add_argument("--max-epochs", type=int, metavar="N",
                   help="epochs a trial may run (ASHA max_t; caps the grace period)")
    p.add_argument("--name", help="experiment name (default: <space>-<date>-<time>)")
    p.add_argument("--storage-path", default="runs/search", metavar="PATH",
                   help="where experiments go: a path (shared storage on multi-node) or URI (default runs/search)")
    p.add_argument("--address", metavar="ADDR",
                   help="run on an existing Ray cluster: auto, host:port or ray://host:port (default: start one)")
    p.add_argument("--cpus-per-trial", type=float, metavar="C", help="CPU cores reserved per trial")
    p.add_argument("--gpus-per-trial", type=float, metavar="G", help="GPUs per trial; 0.25 puts four trials on a GPU")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted search in this experiment directory")
    p.add_argument("--override", metavar='"K: V, ..."', help='train config overrides for every trial')
    p.add_argument("--dashboard-host", default="127.0.0.1", metavar="HOST",
                   help="Ray dashboard interface (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--dashboard-port", type=int, metavar="PORT",
                   help="Ray dashboard port (default 8265, or the next free one when another Ray holds it)")
    p.add_argument("--smoke-test", action="store_true", help="tiny model and data, 4 trials of 2 epochs: seconds each")
    p.add_argument("--metric", help="metric to optimise: val/mse_v (default) or epoch/train_loss_avg")
    p.add_argument("--seed", type=int, metavar="N", help="sampler seed (default from the space)")
    return p


# ---------------------------------------------------------------- planning (no Ray)

@dataclass
class Experiment:
    """Where an experiment lives and the resolved space it runs."""

    space: SearchSpace
    name: str
    storage_path: str  # absolute local path or URI

    @property
    def path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"

    @property
    def local_dir(self) -> Optional[Path]:
        return None if "://" in self.storage_path else Path(self.path)

    @property
    def study_db(self) -> Path:
        """The study sits in the experiment dir; for URI storage, in a local runs/ dir."""
        return (self.local_dir or Path("runs/search_studies").resolve() / self.name) / STUDY_FILE


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
        base = apply_overrides(base, parse_overrides(args.override))
    base_cfg = from_dict(_absolute_data_path(base))
    space = _apply_flags(space, args, base_cfg)
    space.check(base_cfg.to_dict(), seed=space.search.seed)
    name = args.name or f"{Path(args.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp = Experiment(space, _check_name(name), _storage_path(args.storage_path))
    if exp.local_dir is not None and exp.local_dir.exists():
        raise UserError(f"experiment '{exp.path}' already exists; pass --resume {exp.path} to continue it "
                        "or --name to start a new one")
    return exp


def _apply_flags(space: SearchSpace, args: argparse.Namespace, base_cfg: TrainConfig) -> SearchSpace:
    """The space with the base inlined and --smoke-test, then explicit flags, over its settings."""
    flags = {"num_samples": args.num_samples, "max_concurrent": args.max_concurrent, "max_t": args.max_epochs,
             "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
             "metric": args.metric, "seed": args.seed}
    given = {**(SMOKE_SETTINGS if args.smoke_test else {}), **{k: v for k, v in flags.items() if v is not None}}
    max_t = given.get("max_t", space.scheduler.max_t or base_cfg.trainer.max_epochs)
    grace = min(given.get("grace_period", space.scheduler.grace_period), max_t)
    r = space.resources
    resolved = dataclasses.replace(
        space, base_config=None, base=base_cfg.to_dict(), overrides={}, metric=given.get("metric", space.metric),
        mode=METRIC_MODES[args.metric] if args.metric in METRIC_MODES else space.mode,
        num_samples=given.get("num_samples", space.num_samples),
        max_concurrent=given.get("max_concurrent", space.max_concurrent),
        scheduler=dataclasses.replace(space.scheduler, max_t=max_t, grace_period=grace),
        resources=dataclasses.replace(r, cpus_per_trial=given.get("cpus_per_trial", r.cpus_per_trial),
                                      gpus_per_trial=given.get("gpus_per_trial", r.gpus_per_trial)),
        search=dataclasses.replace(space.search, seed=given.get("seed", space.search.seed)))
    check_settings(resolved)
    return resolved


def _absolute_data_path(raw: dict[str, Any]) -> dict[str, Any]:
    """Trials run in their own working directories: pin a relative data.path to the CWD."""
    path = (raw.get("data") or {}).get("path")
    if isinstance(path, str) and path and not Path(path).is_absolute():
        return apply_overrides(raw, {"data.path": str(Path(path).resolve())})
    return raw


def _check_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise UserError(f"--name {name!r} must be a plain directory name (no '/')")
    return name


def _storage_path(value: str) -> str:
    """A URI as given, else an absolute local path whose nearest existing part is a writable directory."""
    if "://" in value:
        return value
    path = Path(value).expanduser().resolve()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not a directory" if not existing.is_dir() else "is not writable"
        raise UserError(f"--storage-path '{value}' cannot hold experiments: '{existing}' {problem}; "
                        "pass a writable directory")
    return str(path)


def plan_resume(args: argparse.Namespace) -> Experiment:
    """The experiment in --resume DIR, after checking it is one; search-shaping flags are refused."""
    path = Path(args.resume).expanduser().resolve()
    if not (path / SPACE_FILE).is_file() or not _can_restore(path):
        raise UserError(f"'{args.resume}' is not an abr-tune search experiment (no {SPACE_FILE} and Tune state); "
                        "pass the experiment directory printed when the search started")
    fixed = [f for f in ("space", "num_samples", "max_concurrent", "max_epochs", "cpus_per_trial", "gpus_per_trial",
                         "override", "metric", "seed", "name") if getattr(args, f) is not None]
    if fixed or args.smoke_test:
        shown = ", ".join("--" + f.replace("_", "-") for f in fixed + (["smoke_test"] if args.smoke_test else []))
        raise UserError(f"{shown} cannot change a search being resumed; it continues with the settings in "
                        f"{path / SPACE_FILE}")
    return Experiment(load_space(path / SPACE_FILE), path.name, str(path.parent))


def _can_restore(path: Path) -> bool:
    from ray import tune

    return tune.Tuner.can_restore(str(path))


# ---------------------------------------------------------------- the trial

class TuneReporter:
    """train_abr's Reporter inside a Tune trial: one `tune.report` per epoch.

    When the scheduler stops the trial, Tune ends the trial's thread with SystemExit from
    inside `tune.report`; the reporter turns that into StopRun so train_abr closes its logs and
    returns its summary, and `stopped` tells run_trial to hand the exit back to Tune.
    """

    def __init__(self) -> None:
        import ray

        self._node_id = ray.get_runtime_context().get_node_id()
        self.stopped = False

    def restore_dir(self) -> Optional[Path]:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        return Path(checkpoint.to_directory()) if checkpoint else None

    def report(self, metrics: dict[str, float], checkpoint_dir: Optional[Path]) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        try:
            tune.report({**metrics, "node_id": self._node_id}, checkpoint=checkpoint)
        except SystemExit:
            self.stopped = True
            raise StopRun(f"{STOPPED_EARLY} at epoch {int(metrics['epoch'])}") from None


def run_trial(config: dict[str, Any], *, space: SearchSpace, arrays: Any = None) -> None:
    """The Tune trainable: Optuna's params → a TrainConfig → train_abr in this trial's dir."""
    from ray import tune

    from .train import train_abr

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "checkpoint created" line per epoch is noise
    # The worker is reused for the next trial once this one's thread has ended; Tune waits 2 s
    # for that by default and fails the next trial if a stopped one takes longer to close.
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "60")
    trial_dir = Path(tune.get_context().get_trial_dir())
    cfg = from_dict(apply_overrides(space.base, {**space.resolve(config), **trial_overrides(space, trial_dir)}))
    reporter = TuneReporter()
    summary = train_abr(cfg, reporter, arrays=arrays)
    (trial_dir / TRIAL_SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str))
    if reporter.stopped:
        sys.exit(0)  # how a stopped trial's thread must end: Tune then reuses this worker


def trial_overrides(space: SearchSpace, trial_dir: Path) -> dict[str, Any]:
    """What every trial sets: its own log dir, the search's epochs, threads = its CPUs, and
    the device Tune reserved (cuda with --gpus-per-trial > 0, else cpu: never an unreserved GPU)."""
    r = space.resources
    return {"log_dir": str(trial_dir), "exp_name": "train", "device": "cuda" if r.gpus_per_trial > 0 else "cpu",
            "trainer.max_epochs": space.scheduler.max_t, "trainer.progress": False,
            "trainer.keep_last_k": 0,  # Tune keeps the trial's checkpoints; no periodic copies
            "advanced.torch_threads": max(1, math.floor(r.cpus_per_trial)),
            **({"trainer.sample_every_epochs": 1} if space.metric.startswith("sample/") else {})}


def trainable(space: SearchSpace, arrays: Any) -> Any:
    from ray import tune

    r = space.resources
    fn = tune.with_parameters(run_trial, space=space, arrays=arrays)
    return tune.with_resources(fn, {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial})


def new_tuner(exp: Experiment, arrays: Any) -> Any:
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    s = exp.space
    s.bind(from_dict(s.base))
    if s.search.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(seed=s.search.seed, n_startup_trials=s.search.n_startup_trials)
    else:
        sampler = optuna.samplers.RandomSampler(seed=s.search.seed)
    exp.study_db.parent.mkdir(parents=True, exist_ok=True)
    searcher = OptunaSearch(
        space=s.define_by_run, metric=s.metric, mode=s.mode, sampler=sampler, study_name=exp.name,
        storage=optuna.storages.RDBStorage(f"sqlite:///{exp.study_db}"),
        points_to_evaluate=s.points_to_evaluate(from_dict(s.base)) or None)
    # ASHA times trials in epochs; stop_last_trials=False: reaching max_t alone stops nothing,
    # trials end when train_abr returns (trainer.max_epochs = max_t).
    scheduler = ASHAScheduler(time_attr="epoch", max_t=s.scheduler.max_t, grace_period=s.scheduler.grace_period,
                              reduction_factor=s.scheduler.reduction_factor, stop_last_trials=False)
    return tune.Tuner(
        trainable(s, arrays),
        tune_config=tune.TuneConfig(
            metric=s.metric, mode=s.mode, search_alg=ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent),
            scheduler=scheduler, num_samples=s.num_samples, trial_name_creator=trial_name,
            # A finished trial's worker runs the next one: torch, the package and its first
            # optimizer (which imports torch._dynamo) are loaded once per worker, ~2.6 s a trial.
            reuse_actors=True,
            trial_dirname_creator=trial_dirname),
        run_config=run_config(exp))


def trial_name(trial: Any) -> str:
    """`<id> lr=0.001 stft_weight=0.15`: Tune's live table shows names, not searcher params."""
    params = " ".join(f"{short_name(k)}={_fmt(v)}" for k, v in (trial.config or {}).items())
    return f"{trial.trial_id} {params}".strip()


def trial_dirname(trial: Any) -> str:
    """`trial_<id>_lr=0.001,stft_weight=0.15`: TensorBoard lists runs by these names."""
    params = ",".join(f"{short_name(k)}={_fmt(v)}" for k, v in (trial.config or {}).items())
    return re.sub(r"[^\w.=,+-]", "", f"trial_{trial.trial_id}_{params}")[:120]


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value).replace(" ", "")


def run_config(exp: Experiment) -> Any:
    from ray import tune

    return tune.RunConfig(
        name=exp.name, storage_path=exp.storage_path,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=exp.space.metric,
                                                checkpoint_score_order=exp.space.mode),
        failure_config=tune.FailureConfig(max_failures=2), verbose=1,
        # Trial dirs (TensorBoard logs, train_summary.json) reach storage from any node.
        sync_config=tune.SyncConfig(sync_artifacts=True))


def load_data(space: SearchSpace) -> Any:
    """Load the dataset once for the object store (unless trials search data.* keys) and check
    that every batch size the space can propose fits its train split."""
    if any(k.startswith("data.") for p in space.params for k in p.keys):
        return None
    from .data import load_arrays as load
    from .data import prepare_splits

    base = from_dict(space.base)
    arrays = load(base.data)
    n_train = len(prepare_splits(base.data, arrays).train)

    def fits(cfg: TrainConfig) -> None:  # the rule train_abr applies when it sets up a run
        if cfg.loader.drop_last and cfg.loader.batch_size > n_train:
            raise UserError(f"loader.batch_size={cfg.loader.batch_size} exceeds the {n_train} recordings of "
                            "the train split; lower it or use more data")

    space.check(space.base, seed=space.search.seed, extra=fits)
    return arrays


# ---------------------------------------------------------------- main

@cli_entry
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # Tune warns whenever checkpoints outpace its state snapshots; with epochs of seconds they do.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    exp = plan_resume(args) if args.resume else plan_new(args)
    address = check_address(args.address)
    if address is None:
        check_local_resources(exp.space)
        check_dashboard(args.dashboard_host, args.dashboard_port)
    arrays = load_data(exp.space)
    started = time.time()
    start_ray(args, address)
    try:
        check_resources(exp.space)
        if args.resume:
            from ray import tune

            print(f"Resuming experiment {exp.path}", flush=True)
            tuner = tune.Tuner.restore(exp.path, trainable=trainable(exp.space, arrays),
                                       resume_unfinished=True, resume_errored=True)
        else:
            _write_space(exp)
            tuner = new_tuner(exp, arrays)
        results = tuner.fit()
        summary = report(exp, results, tune_trials(exp), wall_time_sec=time.time() - started,
                         resumed=bool(args.resume))
    except BaseException:
        import ray

        ray.shutdown()
        raise
    with _ray_stopping():
        if summary["interrupted"]:
            return 130
        _write_report(exp)
    return 0 if summary["best"] else 1


@contextlib.contextmanager
def _ray_stopping():
    """Shut Ray down in the background while the body runs: ray.shutdown mostly waits ~1.5 s
    for Ray's processes to exit, and the end-of-search report needs no Ray."""
    import ray

    stopping = threading.Thread(target=ray.shutdown, name="ray-shutdown", daemon=True)
    stopping.start()
    try:
        yield
    finally:
        stopping.join()


def _write_report(exp: Experiment) -> None:
    """The report of a finished local search; a report failure never fails the search itself."""
    if exp.local_dir is None:
        print(f"Report: run `python -m abr_tune.report <local copy of {exp.path}>`", flush=True)
        return
    from .report import write_report

    try:
        path = write_report(exp.local_dir)
    except Exception as err:  # noqa: BLE001 - the search's results are already safe on disk
        print(f"abr-tune: warning: the report could not be written ({err}); "
              f"retry with: python -m abr_tune.report {exp.local_dir}", file=sys.stderr)
        return
    print(f"Report: {path / 'index.html'}", flush=True)


def tune_trials(exp: Experiment) -> dict[str, Any]:
    """Tune's trials by id: their status is TERMINATED, ERROR, or PENDING/PAUSED after Ctrl-C."""
    from ray import tune

    return {t.trial_id: t for t in tune.ExperimentAnalysis(exp.path).trials}


def _write_space(exp: Experiment) -> None:
    print(f"Experiment: {exp.path}\nOptuna study: {exp.study_db} (study '{exp.name}')", flush=True)
    text = "# Resolved search space of this experiment (flags applied); --resume reads it.\n"
    text += yaml.safe_dump(exp.space.to_dict(), sort_keys=False)
    if exp.local_dir is None:
        import pyarrow.fs

        fs, root = pyarrow.fs.FileSystem.from_uri(exp.path)
        fs.create_dir(root)
        with fs.open_output_stream(f"{root}/{SPACE_FILE}") as out:
            out.write(text.encode())
        return
    exp.local_dir.mkdir(parents=True)
    (exp.local_dir / SPACE_FILE).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
