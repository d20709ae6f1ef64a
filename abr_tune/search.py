"""`python -m abr_tune.search`: Ray Tune drives train_abr with Optuna TPE and ASHA.

The command plans the experiment (`hpo.plan`: every check before Ray starts), starts or
joins Ray (`hpo.cluster`), runs the tuner (`hpo.tuner`), prints and writes the results
(`hpo.results`) and the report (`hpo.report`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Optional

from .checkpoint import remove_partial_saves_under
from .errors import CliParser, UserError, cli_entry
from .formatting import shell
from .hpo.cluster import (
    SINGLE_NODE_ENV,
    check_address,
    check_dashboard,
    check_local_resources,
    check_ray_home,
    check_resources,
    start_ray,
    stop_on_sigterm,
)
from .hpo.confirm_run import confirm_search, stage_dir
from .hpo.failures import after_failure, close_study
from .hpo.layout import Experiment
from .hpo.lock import lock_given
from .hpo.plan import claim, finished, plan_extend, plan_new, plan_resume, previous_summary, release
from .hpo.summary import resumed_stage, summarise_search
from .hpo.tuner import earlier_results, load_data, new_tuner, trainable, tune_trials, write_space
from .metrics_registry import METRICS, sampled
from .tracking import add_tracking_flags, choice_from_args
from .tracking.search import check_local, log_best, save_choice

EXAMPLES = """examples:
  python -m abr_tune.search --space search_spaces/lr_stft.yaml            # the quick start (2 CPUs, ~7.5 min)
  python -m abr_tune.search --space search_spaces/lr_stft.yaml --smoke-test
  python -m abr_tune.search --resume runs/search/lr_stft-20260101-120000  # after Ctrl-C, a kill or a reboot
  python -m abr_tune.search --extend runs/search/lr_stft-20260101-120000 --num-samples 8   # 8 more trials
  python -m abr_tune.search --space search_spaces/training.yaml --warm-start runs/search/lr_stft-20260101-120000
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
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted search in this experiment directory "
                                                   "(of an extended search: its latest extension, DIR/extend_K/)")
    p.add_argument("--extend", metavar="DIR",
                   help="add --num-samples more trials (default: as many as it has) to this finished search, as a "
                        "new Tune experiment in DIR/extend_2/ (extend_3/, ...): TPE proposes from all its trials, "
                        "ASHA cuts against them, the report covers them all")
    p.add_argument("--warm-start", action="append", metavar="DIR",
                   help="run this earlier experiment's best configurations first (repeatable; those that fit "
                        "the new space)")
    p.add_argument("--warm-start-top", type=int, metavar="K",
                   help="how many of each --warm-start experiment's best configurations (default 3)")
    p.add_argument("--override", metavar='"K: V, ..."', help='train config overrides for every trial')
    p.add_argument("--dashboard-host", default="127.0.0.1", metavar="HOST",
                   help="Ray dashboard interface (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--dashboard-port", type=int, metavar="PORT",
                   help="Ray dashboard port (default 8265, or the next free one when another Ray holds it)")
    p.add_argument("--smoke-test", action="store_true", help="tiny model and data, 4 trials of 2 epochs: seconds each")
    p.add_argument("--metric", action="append", metavar="METRIC",
                   help=f"metric to optimise, its direction set from it (default: the space's, val/mse_v); "
                        f"repeat it for several (a Pareto front; the first drives ASHA): {', '.join(METRICS)}")
    p.add_argument("--seed", type=int, metavar="N", help="sampler seed (default from the space)")
    p.add_argument("--confirm-top", type=int, metavar="K",
                   help="after the search, re-run the top K configurations and the base config over seeds; the "
                        "confirmed winner becomes best_config.yaml (default from the space: confirm.top_k, 0 = off)")
    p.add_argument("--confirm-seeds", type=int, metavar="N", help="training seeds per confirmed configuration "
                                                                   "(default from the space: confirm.seeds, 3)")
    add_tracking_flags(p, "every trial")
    return p


@cli_entry
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.address is None:  # a local Ray: every service on loopback, set before ray is imported
        os.environ.setdefault(SINGLE_NODE_ENV, "0")
        # and its dashboard and API behind a token: Ray 2.60's default, opt-in in 2.52 (docs/versions.md)
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    # Tune warns whenever checkpoints outpace its state snapshots; with epochs of seconds they do.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's state every second (its default: every 10 s or more): a trial that finished between two saves
    # is re-run from its last checkpoint after a kill -9, and one started and finished between them would
    # be forgotten by Tune while the study holds it. A save is a few KB of JSON and the searcher's pickle.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # No automatic loggers (hpo.tuner.run_config passes the CSV and JSON ones): Tune's automatic
    # TensorBoard logger makes it print `tensorboard --logdir` for its driver_artifacts directory,
    # which holds no trial logs; the trials' TensorBoard runs are under the experiment directory.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    if sum(bool(x) for x in (args.resume, args.extend)) > 1:
        raise UserError("give --resume DIR or --extend DIR, not both")
    if (args.resume or args.extend) and (args.logger or args.tracking_uri):
        raise UserError("--logger is chosen when a search starts; --resume and --extend log to the tracker it "
                        "started with (drop --logger)")
    tracking = choice_from_args(args)  # a missing tracker package stops here, before any work
    if args.resume or args.extend:  # one process writes an experiment: locked before it is planned from
        lock_given(args.resume or args.extend, "resume the search" if args.resume else "extend the search")
    exp = plan_extend(args) if args.extend else plan_resume(args) if args.resume else plan_new(args)
    check_local(exp, tracking)
    if args.resume and (done := finished(exp)):
        print(done, flush=True)
        return 0
    continuing = bool(args.resume or args.extend)  # an experiment that exists already
    if any(sampled(m) for m in exp.space.objectives):
        # sample metrics are reported on sampling epochs only (ASHA's rungs among them); the space checked
        # every name, and the searcher and ASHA pass over an epoch without its metric
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    address = check_address(args.address)
    if address is None:
        check_local_resources(exp.space)
        check_dashboard(args.dashboard_host, args.dashboard_port)
        check_ray_home()
    arrays = load_data(exp.space)
    import ray  # after every check of the user's input (importing Ray takes seconds), before any claim

    if args.extend:
        extend_space(exp)  # extend_K/space.yaml: an extension interrupted from now on is resumed by --resume DIR
    elif not args.resume:
        claim(exp)  # last check before Ray starts: a second search with this --name stops here
        save_choice(exp, tracking)
    # The confirmation an earlier run of this search started and did not finish continues in its stage.
    stage = (args.resume and resumed_stage(previous_summary(exp))) or stage_dir(exp)
    started = time.time()
    try:
        start_ray(args, address)
        stop_on_sigterm()
        check_resources(exp.space)
        fitted = _fit(args, exp, arrays)
        results = [*earlier_results(exp), *fitted]  # with an extension, the search's trials before it too
        if exp.local_dir is not None:  # Tune has returned: no trial writes any more
            remove_partial_saves_under(exp.local_dir)
        summary = summarise_search(exp, results, tune_trials(exp), wall_time_sec=time.time() - started,
                                   resumed=continuing, confirm_stage=stage if exp.space.confirm.top_k else None)
        if exp.space.confirm.top_k and summary["best"] and not summary["interrupted"]:
            summary = confirm_search(exp, summary, arrays, exp.space.confirm.top_k, exp.space.confirm.seeds, stage)
    except BaseException as err:
        ray.shutdown()
        if not continuing:
            release(exp)
        after_failure(exp, err)
        if isinstance(err, KeyboardInterrupt):  # a second Ctrl-C while Tune was stopping: no traceback
            print(f"abr-tune: search interrupted; continue it with: python -m abr_tune.search --resume "
                  f"{shell(exp.path)}", file=sys.stderr, flush=True)
            return 130
        raise
    # Before the report, not beside it: shut down in a background thread, Ray's C++ worker killed
    # the whole process (exit 1, no report) when an object reference was freed mid-shutdown.
    ray.shutdown()
    if summary["interrupted"]:
        return 130
    close_study(exp)  # a finished search has no trial left running
    log_best(exp, summary)
    _write_report(exp)
    return 0 if summary["best"] else 1


def _fit(args: argparse.Namespace, exp: Experiment, arrays: Any) -> Any:
    """Run the Tune experiment `exp` names (`exp.run`: the search's own or an extension's) to its end."""
    from ray import tune

    if not args.resume:
        if not args.extend:
            write_space(exp)
        return new_tuner(exp, arrays).fit()
    if exp.run and not tune.Tuner.can_restore(exp.tune_path):  # stopped before Tune saved it: none of it ran
        print(f"Starting extension {exp.tune_path} again ({exp.space.num_samples} trials)", flush=True)
        return new_tuner(exp, arrays).fit()
    from .hpo.tune_restore import restoring

    print(f"Resuming experiment {exp.tune_path}", flush=True)
    with restoring(exp):  # the experiment's own study and directory, wherever it was created
        tuner = tune.Tuner.restore(exp.tune_path, trainable=trainable(exp.space, arrays), resume_unfinished=True,
                                   resume_errored=True)
        return tuner.fit()


def extend_space(exp: Experiment) -> None:
    """Write the extension's space.yaml (its number of trials) into its new Tune experiment directory."""
    done = exp.earlier_samples
    print(f"Extending experiment {exp.path}: {exp.space.num_samples} more trials ({done} -> {exp.total_samples}) "
          f"in a new Tune experiment, {exp.tune_path}; TPE proposes from all {done} in {exp.study_db.name}",
          flush=True)
    write_space(exp, quiet=True)


def _write_report(exp: Experiment) -> None:
    """The report of a finished local search; a report failure never fails the search itself."""
    if exp.local_dir is None:
        print(f"Report: run `python -m abr_tune.report <local copy of {exp.path}>`", flush=True)
        return
    try:
        from .hpo.report import write_report

        path = write_report(exp.local_dir)
    except Exception as err:  # noqa: BLE001 - the search's results are already safe on disk
        print(f"abr-tune: warning: the report could not be written ({err}); "
              f"retry with: python -m abr_tune.report {shell(exp.local_dir)}", file=sys.stderr)
        return
    print(f"Report: {path / 'index.html'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
