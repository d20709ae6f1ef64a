"""`python -m abr_tune.train`: train the ABR diffusion model from a YAML config (see `abr_tune.training`)."""

from __future__ import annotations

import argparse
import sys

from .config import load_config
from .errors import CliParser, cli_entry
from .formatting import shell
from .tracking import add_tracking_flags, choice_from_args
from .training import train_abr
from .training.resume import config_for_resume

__all__ = ["train_abr", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(
        prog="python -m abr_tune.train",
        description="Train the ABR diffusion model (EMA, AMP, DDIM samples, TensorBoard, checkpoints).",
        epilog='example: python -m abr_tune.train --config configs/cpu.yaml --override "optim.lr: 3e-4"',
    )
    p.add_argument("--config", help="YAML train config (default: built-in defaults = configs/train.yaml)")
    p.add_argument("--override",
                   help='comma-separated "key: value" pairs, e.g. "optim.lr: 1e-4, trainer.max_epochs: 300"')
    p.add_argument("--resume", metavar="CKPT",
                   help="continue the run a checkpoint (_last.pt) belongs to, with its config unless --config is "
                        "given; only the keys docs/training.md lists may change (e.g. trainer.max_epochs, optim.lr)")
    add_tracking_flags(p, "the run")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tracking = choice_from_args(args)  # a missing tracker package stops here, before any work
    if args.resume and not args.config:  # continue with the checkpoint's own config, in its run's directory
        cfg = config_for_resume(args.resume, args.override)
    else:
        cfg = load_config(args.config, args.override)
    print(f"abr-tune: training '{cfg.exp_name}' -> {cfg.run_dir} (tensorboard --logdir {shell(cfg.log_dir)})")
    from .tracking.train import train_tracker

    summary = train_abr(cfg, resume_from=args.resume, tracker=train_tracker(tracking))
    print(f"abr-tune: {summary['status']}; best val/mse_v {summary['best_val_mse_v']:.5f} at epoch "
          f"{summary['best_epoch']}; best checkpoint: {summary['best_checkpoint']}")
    return 130 if summary["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
