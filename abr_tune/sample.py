"""`python -m abr_tune.sample`: generate ABRs for one condition from a checkpoint's EMA weights."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .config import STATIC_NAMES
from .errors import CliParser, UserError, cli_entry

SUFFIXES = (".png", ".npz")


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(
        prog="python -m abr_tune.sample",
        description="Generate ABR waveforms for one condition with a checkpoint's EMA weights (DDIM).",
        epilog="example: python -m abr_tune.sample --checkpoint runs/cpu/abr_cpu/checkpoints/abr_cpu_best.pt "
               "--age 30 --intensity 80 --rate 21.1 --fmp 3 --n 8 --cfg-scale 1.5 --out samples.png",
    )
    p.add_argument("--checkpoint", required=True, help="a .pt checkpoint written by abr-tune")
    p.add_argument("--age", type=float, required=True, help="age in years")
    p.add_argument("--intensity", type=float, required=True, help="stimulus intensity in dB nHL")
    p.add_argument("--rate", type=float, required=True, help="stimulus rate in clicks/s")
    p.add_argument("--fmp", type=float, required=True, help="Fmp response statistic")
    p.add_argument("--n", type=int, default=8, help="number of waveforms (default 8)")
    p.add_argument("--cfg-scale", type=float, help="classifier-free guidance scale (default: the config's)")
    p.add_argument("--steps", type=int, help="DDIM steps (default: the config's diffusion.sample_steps)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the config's diffusion.ddim_eta)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", default="samples.png", help="output .png (figure) or .npz (arrays); default samples.png")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return p


def _check_args(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if out.suffix not in SUFFIXES:
        raise UserError(f"--out must end in {' or '.join(SUFFIXES)}, got '{out}'")
    if out.exists() and not args.force:
        raise UserError(f"'{out}' already exists; choose another --out or pass --force")
    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    return out


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = _check_args(args)
    from .model import Generator  # torch loads here: bad flags fail before it

    gen = Generator.from_checkpoint(args.checkpoint, sample_steps=args.steps, eta=args.eta)
    values = dict(age=args.age, intensity=args.intensity, rate=args.rate, fmp=args.fmp)
    raw = np.array([[values[k] for k in STATIC_NAMES]], dtype=np.float32)
    signals = gen.generate(raw, repeats=args.n, cfg_scale=args.cfg_scale, seed=args.seed)[:, 0]
    raw = np.repeat(raw, args.n, axis=0)
    _write(out, signals, raw, gen.cfg.data.sample_rate_hz)
    print(f"abr-tune: wrote {args.n} waveforms to {out}")
    return 0


def _write(out: Path, signals: np.ndarray, raw: np.ndarray, sample_rate_hz: float) -> None:
    from .viz.waveforms import GENERATED_COLOR, waveform_grid

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        time_ms = np.arange(signals.shape[1]) / sample_rate_hz * 1000
        np.savez(out, signals_uv=signals, static=raw, static_order=np.array(STATIC_NAMES), time_ms=time_ms)
        return
    fig = waveform_grid([(signals, "generated", GENERATED_COLOR)], raw, sample_rate_hz,
                        "Generated ABRs (EMA weights, DDIM)")
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
