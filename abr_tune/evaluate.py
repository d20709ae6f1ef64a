"""`python -m abr_tune.evaluate`: does a checkpoint generate physiologically right ABRs?

Generates with the EMA weights and DDIM for the conditions of a held-out split and scores the
waveforms against the recordings and the ground truth (`abr_tune.fidelity`); writes
metrics.json, summary.md and figures into one output directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data.request import parse_pairs
from .errors import CliParser, UserError, cli_entry
from .fidelity.evaluation import DEFAULT_SCALES, SPLITS, EvalOptions, evaluate
from .fidelity.summary import summary_markdown
from .paths import unwritable


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse a file, a place that cannot be written, or an existing directory unless `force`."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is a file; pass a directory")
    if out.exists() and not force:
        raise UserError(f"'{out}' already exists; choose another --out or pass --force to overwrite it")
    blocked = unwritable(out)
    if blocked:
        raise UserError(f"--out '{out}' cannot be written: '{blocked[0]}' {blocked[1]}; pass --out in a writable place")


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(
        prog="python -m abr_tune.evaluate",
        description="Score a checkpoint's generated ABRs (EMA weights, DDIM) against a held-out split: waveform "
                    "agreement, peak latencies/amplitudes, response detection, latency-intensity slope, age and "
                    "rate effects, diversity. Writes metrics.json, summary.md and figures.",
        epilog="example: python -m abr_tune.evaluate --checkpoint runs/cpu/abr_cpu/checkpoints/abr_cpu_best.pt "
               "--cfg-scale 1 1.5 2 --repeats 3",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a .pt checkpoint written by abr-tune")
    p.add_argument("--split", default="test", metavar="NAME",
                   help=f"which recordings: {', '.join(SPLITS)} (default test; 'all' = every recording of the "
                        "data, e.g. an external file)")
    p.add_argument("--data", metavar="PATH", help="evaluate on this .npz/.csv instead of the checkpoint's own data")
    p.add_argument("--cfg-scale", type=float, nargs="+", metavar="S", default=list(DEFAULT_SCALES),
                   help="classifier-free guidance scales to compare (default 1 1.5 2)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="DDIM steps (default: the checkpoint's diffusion.sample_steps)")
    p.add_argument("--eta", type=float, metavar="E",
                   help="DDIM eta: 0 deterministic, 1 DDPM's fresh noise at every step (default: the checkpoint's "
                        "diffusion.ddim_eta)")
    p.add_argument("--repeats", type=int, default=3, metavar="K",
                   help="samples per condition, different seeds (default 3; diversity needs >= 2)")
    p.add_argument("--max-conditions", type=int, default=256, metavar="M",
                   help="evaluate at most this many recordings of the split, a seeded random subset (default 256)")
    p.add_argument("--condition", action="append", metavar="NAME=VALUE",
                   help="evaluate only the recordings with this condition value (one the model declares; repeatable)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: <run dir>/eval/<checkpoint name>_<split> "
                                                "for a checkpoint in <run dir>/checkpoints/, else eval/ beside it)")
    p.add_argument("--force", action="store_true", help="write into --out even if it exists")
    return p


def default_out(checkpoint: str | Path, split: str) -> Path:
    """`<run dir>/eval/<ckpt>_<split>` for a run's checkpoint (`<run dir>/checkpoints/`), else `eval/` beside it."""
    ckpt = Path(checkpoint).resolve()
    home = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return home / "eval" / f"{ckpt.stem}_{split}"


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = EvalOptions(split=args.split, cfg_scales=tuple(dict.fromkeys(args.cfg_scale)), steps=args.steps,
                          eta=args.eta, repeats=args.repeats, max_conditions=args.max_conditions, seed=args.seed,
                          data_path=args.data, conditions=parse_pairs(args.condition))
    options.check()
    out = Path(args.out) if args.out else default_out(args.checkpoint, args.split)
    check_out_dir(out, args.force)
    report = evaluate(args.checkpoint, options, out)
    print(summary_markdown(report).split("## What the numbers mean")[0].rstrip())
    print(f"abr-tune: wrote metrics.json, summary.md and figures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
