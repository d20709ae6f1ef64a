"""`python -m abr_tune.retrain --experiment DIR`: train a search's best config again, test it.

Reads `<experiment>/best_config.yaml` (written by abr_tune.search), trains it with train_abr
for the length the search measured (its trials' max_t epochs, the LR schedule over them;
`--max-epochs N` trains longer), scores the best checkpoint on the held-out test split and
compares it with what the search saw. The result goes to `<run dir>/retrain_result.json`.
`--trial ID` re-trains any trial instead; `--top K` re-trains the top K and the base config
and reports whether the search's ranking holds at that length (`abr_tune.hpo.transfer`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional

from .config import TrainConfig, load_config, parse_overrides
from .errors import CliParser, UserError, cli_entry
from .formatting import fmt_value, json_safe, shell, table
from .hpo.confirm import BASE_LABEL
from .hpo.layout import BEST_CONFIG_FILE, RETRAIN_DIR, SPACE_FILE, SUMMARY_FILE, TRANSFER_DIR, TRANSFER_FILE, rebase
from .hpo.lock import lock_experiment
from .hpo.space_file import load_space
from .hpo.transfer import format_transfer, rank_agreement, top_entries, train_config, transfer_rows
from .metrics_registry import HUMAN_PRIMARY, wave_metric
from .paths import unwritable

RESULT_FILE = "retrain_result.json"


def build_parser() -> CliParser:
    p = CliParser(prog="python -m abr_tune.retrain", description=(
        "Re-train the best trial of a search (for the length it measured, or --max-epochs) and evaluate it on "
        "the test split; --trial re-trains any trial, --top K measures how the ranking transfers."))
    p.add_argument("--experiment", required=True, metavar="DIR",
                   help="the search's experiment directory (holds best_config.yaml)")
    p.add_argument("--max-epochs", type=int, metavar="N",
                   help="epochs to train, the LR schedule decaying over them (default: what the search measured, "
                        "its trials' max_t; with --top: the base config's full length)")
    p.add_argument("--override", metavar='"K: V, ..."', help='more train config overrides, e.g. "exp_name: retrain2"')
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", metavar="ID",
                       help="re-train this trial (an id of the ranked table) instead of the best")
    which.add_argument("--top", type=int, metavar="K",
                       help="re-train the top K configurations and the base config, and report rank agreement and "
                            "the gain over the base at that length")
    return p


def plan(args: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """The config to train and the search summary; raises UserError before anything runs."""
    exp = _experiment(args)
    summary = _read_summary(exp / SUMMARY_FILE)
    # Paths in the summary and best_config.yaml name the experiment where the search wrote it;
    # a copied or moved experiment re-trains into, and compares against, its own copy.
    old_root, here = str(summary["experiment_dir"]), exp.resolve()
    extra = parse_overrides(args.override) if args.override else {}
    epochs = args.max_epochs or summary.get("max_epochs")
    if args.trial is not None:
        trial = _trial(summary, args.trial)
        summary["best"] = {**trial, "best_checkpoint": rebase(trial.get("best_checkpoint"), old_root, here)}
        cfg = _config_for(exp, trial["overrides"], f"{RETRAIN_DIR}_{args.trial}", epochs, extra)
        return cfg, summary
    if summary.get("best"):
        summary["best"]["best_checkpoint"] = rebase(summary["best"].get("best_checkpoint"), old_root, here)
    overrides = {**({"trainer.max_epochs": epochs} if epochs else {}), **extra}
    cfg = load_config(exp / BEST_CONFIG_FILE, overrides)
    if "log_dir" not in extra:
        cfg = dataclasses.replace(cfg, log_dir=rebase(str(cfg.log_dir), old_root, here))
    return cfg, summary


def _experiment(args: Any) -> Path:
    exp = Path(args.experiment)
    if not (exp / BEST_CONFIG_FILE).is_file() or not (exp / SUMMARY_FILE).is_file():
        raise UserError(f"'{exp}' has no {BEST_CONFIG_FILE} and {SUMMARY_FILE}; pass the directory of a "
                        "finished search (python -m abr_tune.search prints it)")
    if args.max_epochs is not None and not 1 <= args.max_epochs <= 100_000:
        raise UserError(f"--max-epochs must be between 1 and 100000, got {args.max_epochs}")
    if args.top is not None and not 1 <= args.top <= 50:
        raise UserError(f"--top must be between 1 and 50, got {args.top}")
    lock_experiment(exp, "re-train from the experiment")  # held while this process writes into it
    return exp


def _trial(summary: dict[str, Any], trial_id: str) -> dict[str, Any]:
    trials = {t["trial_id"]: t for t in summary.get("trials", [])}
    if trial_id not in trials:
        shown = ", ".join(list(trials)[:12]) or "none"
        raise UserError(f"--trial {trial_id!r} is not a trial of this search; its trials are: {shown}")
    return trials[trial_id]


def _config_for(exp: Path, overrides: dict[str, Any], name: str, epochs: Optional[int],
                extra: dict[str, Any], log_dir: Optional[Path] = None) -> TrainConfig:
    """A trial's configuration rebuilt from the search's base (space.yaml), in its own run directory."""
    space = load_space(exp / SPACE_FILE)
    device = "cuda" if space.resources.gpus_per_trial > 0 else space.base.get("device", "auto")
    return train_config(space.base, overrides, log_dir=str(log_dir or exp.resolve()), exp_name=name,
                        device=device, max_epochs=epochs, extra=extra)


def _read_summary(path: Path) -> dict[str, Any]:
    """search_summary.json with the keys main reads; a damaged file is a UserError."""
    fix = "re-run or resume the search"
    try:
        summary = json.loads(path.read_text())
    except ValueError as err:  # bad JSON, or bytes that are not UTF-8
        raise UserError(f"'{path}' is not a readable search summary ({err}); {fix}") from None
    if not isinstance(summary, dict) or not {"name", "experiment_dir", "metric", "best"} <= summary.keys():
        raise UserError(f"'{path}' is not a search summary (no name, experiment_dir, metric and best); {fix}")
    return summary


@cli_entry
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.top is not None:
        return _transfer(args)
    cfg, search = plan(args)
    _refuse_existing(cfg)
    from .training import train_abr
    from .training.validation import evaluate_checkpoint

    which = f"trial {args.trial}" if args.trial else "the best trial"
    print(f"abr-tune: re-training {which} of '{search['name']}' for {cfg.trainer.max_epochs} epochs "
          f"-> {cfg.run_dir} (tensorboard --logdir {shell(cfg.run_dir)})", flush=True)
    trained = train_abr(cfg)
    if trained["status"] == "interrupted" or not trained["best_checkpoint"]:
        print(f"abr-tune: re-training {trained['status']}; nothing to evaluate")
        return 130 if trained["status"] == "interrupted" else 1
    result = {
        "experiment": search["experiment_dir"], "metric": search["metric"], "search_best": search["best"],
        "search_max_epochs": search.get("max_epochs"), "primary_wave": cfg.profile.primary, "retrain": _brief(trained),
        "test": evaluate_checkpoint(trained["best_checkpoint"], split="test"),
        "search_checkpoint_test": _test_of(search["best"], evaluate_checkpoint),
    }
    (cfg.run_dir / RESULT_FILE).write_text(json.dumps(result, indent=1, default=str))
    print(comparison(result))
    print(f"abr-tune: wrote {cfg.run_dir / RESULT_FILE}")
    return 0


def _transfer(args: Any) -> int:
    """--top K: re-train the top K and the base config at one length; rank agreement and gains."""
    from .training import train_abr

    exp = _experiment(args)
    summary = _read_summary(exp / SUMMARY_FILE)
    extra = parse_overrides(args.override) if args.override else {}
    entries = top_entries(summary, args.top)
    epochs = args.max_epochs or int(load_space(exp / SPACE_FILE).base.get("trainer", {}).get("max_epochs", 0)) or None
    out = exp.resolve() / TRANSFER_DIR
    configs = {e.label: _config_for(exp, e.overrides, e.label, epochs, extra, out) for e in entries}
    for cfg in configs.values():
        if (cfg.checkpoint_dir / f"{cfg.exp_name}_last.pt").exists():
            raise UserError(f"'{cfg.run_dir}' already holds a re-training of --top; move {out} away to measure "
                            "again, or pass --override \"log_dir: <another directory>\"")
    full: dict[str, float] = {}
    for i, (label, cfg) in enumerate(configs.items(), 1):
        print(f"abr-tune: [{i}/{len(configs)}] re-training {label} for {cfg.trainer.max_epochs} epochs -> "
              f"{cfg.run_dir}", flush=True)
        trained = train_abr(cfg)
        if trained["status"] == "interrupted":
            return 130
        full[label] = trained["best_val_mse_v"]
    rows = transfer_rows(entries, full)
    ranked = [r for r in rows if r["label"] != BASE_LABEL] + [r for r in rows if r["label"] == BASE_LABEL]
    agreement = rank_agreement([r["search_value"] for r in ranked], [r["full_value"] for r in ranked])
    result = {"experiment": str(exp.resolve()), "metric": summary["metric"], "epochs": cfg.trainer.max_epochs,
              "search_max_epochs": summary.get("max_epochs"), "rows": rows, "agreement": agreement}
    (out / TRANSFER_FILE).write_text(json.dumps(json_safe(result), indent=1) + "\n")
    print(format_transfer(rows, agreement, summary["metric"], cfg.trainer.max_epochs))
    print(f"abr-tune: wrote {out / TRANSFER_FILE}")
    return 0


def _refuse_existing(cfg: TrainConfig) -> None:
    """A second re-train never overwrites the first; say how to train another or continue this one."""
    for name in (f"{cfg.exp_name}_last.pt", f"{cfg.exp_name}_best.pt"):
        if (cfg.checkpoint_dir / name).exists():
            raise UserError(f"'{cfg.run_dir}' already holds a re-training; train another with --override "
                            f"\"exp_name: {cfg.exp_name}_2\", or continue this one with: python -m abr_tune.train "
                            f"--resume {shell(cfg.checkpoint_dir / name)}")
    blocked = unwritable(cfg.run_dir)
    reason = f"'{blocked[0]}' {blocked[1]}" if blocked else None
    if reason is None:
        try:  # some places pass the permission check and still refuse (/proc, /sys)
            cfg.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = err.strerror or str(err)
    if reason:
        raise UserError(f"the re-training cannot write '{cfg.run_dir}': {reason}; "
                        "pass --override \"log_dir: <a writable directory>\"")


def _brief(trained: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "best_val_mse_v", "best_epoch", "epochs_run", "best_checkpoint", "last_checkpoint", "run_dir")
    return {k: trained.get(k) for k in keys}


def _test_of(best: Optional[dict[str, Any]], evaluate: Any) -> Optional[dict[str, Any]]:
    """The search's own best checkpoint on the test split: the same yardstick, fewer epochs."""
    path = (best or {}).get("best_checkpoint")
    return evaluate(path, split="test") if path and Path(path).is_file() else None


def comparison(result: dict[str, Any]) -> str:
    """A small table: search checkpoint vs re-trained model on val and test; the latency row is the species'
    primary wave's (the one its runs report)."""
    search, retrain, test = result["search_best"] or {}, result["retrain"], result["test"]
    before = result["search_checkpoint_test"] or {}
    rows = [("", f"search best ({result['search_max_epochs']} ep max)", f"re-trained ({retrain['epochs_run']} ep)"),
            ("val/mse_v", _fmt(search.get("best_value")), _fmt(retrain["best_val_mse_v"]))]
    latency = wave_metric(result.get("primary_wave", HUMAN_PRIMARY), "latency_mae_ms")
    for key in ("test/mse_v", "sample/corr", "sample/mse_uv", latency):
        rows.append((key, _fmt(before.get(key)), _fmt(test.get(key))))
    return "\n".join(table(rows, rule=False, trim=False))


def _fmt(value: Any) -> str:
    return fmt_value(float(value)) if isinstance(value, (int, float)) else fmt_value(value)


if __name__ == "__main__":
    sys.exit(main())
