"""`python -m abr_tune.retrain --experiment DIR`: train a search's best config at full length, test it.

Reads `<experiment>/best_config.yaml` (written by abr_tune.search), trains it with train_abr,
scores the best checkpoint on the held-out test split and compares it with what the search
saw. The result goes to `<run dir>/retrain_result.json`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional

from .config import TrainConfig, load_config, parse_overrides
from .errors import CliParser, UserError, cli_entry
from .formatting import fmt_value
from .hpo.layout import BEST_CONFIG_FILE, SUMMARY_FILE, rebase

RESULT_FILE = "retrain_result.json"


def build_parser() -> CliParser:
    p = CliParser(prog="python -m abr_tune.retrain", description=(
        "Re-train the best trial of a search at full length and evaluate it on the test split."))
    p.add_argument("--experiment", required=True, metavar="DIR",
                   help="the search's experiment directory (holds best_config.yaml)")
    p.add_argument("--max-epochs", type=int, metavar="N",
                   help="epochs to train (default: the base config's full length)")
    p.add_argument("--override", metavar='"K: V, ..."', help='more train config overrides, e.g. "exp_name: retrain2"')
    return p


def plan(args: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """The config to train and the search summary; raises UserError before anything runs."""
    exp = Path(args.experiment)
    if not (exp / BEST_CONFIG_FILE).is_file() or not (exp / SUMMARY_FILE).is_file():
        raise UserError(f"'{exp}' has no {BEST_CONFIG_FILE} and {SUMMARY_FILE}; pass the directory of a "
                        "finished search (python -m abr_tune.search prints it)")
    overrides = parse_overrides(args.override) if args.override else {}
    if args.max_epochs is not None:
        overrides["trainer.max_epochs"] = args.max_epochs
    summary = _read_summary(exp / SUMMARY_FILE)
    # Paths in the summary and best_config.yaml name the experiment where the search wrote it;
    # a copied or moved experiment re-trains into, and compares against, its own copy.
    old_root, here = str(summary["experiment_dir"]), exp.resolve()
    if summary.get("best"):
        summary["best"]["best_checkpoint"] = rebase(summary["best"].get("best_checkpoint"), old_root, here)
    cfg = load_config(exp / BEST_CONFIG_FILE, overrides)
    if "log_dir" not in overrides:
        cfg = dataclasses.replace(cfg, log_dir=rebase(str(cfg.log_dir), old_root, here))
    return cfg, summary


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
    cfg, search = plan(args)
    from .training import train_abr
    from .training.validation import evaluate_checkpoint

    print(f"abr-tune: re-training the best trial of '{search['name']}' for {cfg.trainer.max_epochs} epochs "
          f"-> {cfg.run_dir} (tensorboard --logdir {cfg.run_dir})", flush=True)
    trained = train_abr(cfg)
    if trained["status"] == "interrupted" or not trained["best_checkpoint"]:
        print(f"abr-tune: re-training {trained['status']}; nothing to evaluate")
        return 130 if trained["status"] == "interrupted" else 1
    result = {
        "experiment": search["experiment_dir"], "metric": search["metric"], "search_best": search["best"],
        "search_max_epochs": search.get("max_epochs"), "retrain": _brief(trained),
        "test": evaluate_checkpoint(trained["best_checkpoint"], split="test"),
        "search_checkpoint_test": _test_of(search["best"], evaluate_checkpoint),
    }
    (cfg.run_dir / RESULT_FILE).write_text(json.dumps(result, indent=1, default=str))
    print(comparison(result))
    print(f"abr-tune: wrote {cfg.run_dir / RESULT_FILE}")
    return 0


def _brief(trained: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "best_val_mse_v", "best_epoch", "epochs_run", "best_checkpoint", "last_checkpoint", "run_dir")
    return {k: trained.get(k) for k in keys}


def _test_of(best: Optional[dict[str, Any]], evaluate: Any) -> Optional[dict[str, Any]]:
    """The search's own best checkpoint on the test split: the same yardstick, fewer epochs."""
    path = (best or {}).get("best_checkpoint")
    return evaluate(path, split="test") if path and Path(path).is_file() else None


def comparison(result: dict[str, Any]) -> str:
    """A small table: search checkpoint vs re-trained model on val and test."""
    search, retrain, test = result["search_best"] or {}, result["retrain"], result["test"]
    before = result["search_checkpoint_test"] or {}
    rows = [("", f"search best ({result['search_max_epochs']} ep max)", f"re-trained ({retrain['epochs_run']} ep)"),
            ("val/mse_v", _fmt(search.get("best_value")), _fmt(retrain["best_val_mse_v"]))]
    for key in ("test/mse_v", "sample/corr", "sample/mse_uv", "sample/wave_v_latency_mae_ms"):
        rows.append((key, _fmt(before.get(key)), _fmt(test.get(key))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _fmt(value: Any) -> str:
    return fmt_value(float(value)) if isinstance(value, (int, float)) else fmt_value(value)


if __name__ == "__main__":
    sys.exit(main())
