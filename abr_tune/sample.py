"""`python -m abr_tune.sample`: generate ABRs for one condition from a checkpoint's EMA weights.

Its .npz is a recordings file (`signals`, `static`/`static_order`/`static_units`, `labels`/`label_order`,
`sample_rate_hz`, `patient_id`) that train and evaluate read back; `signals_uv` and `time_ms` stay too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .config import STATIC_NAMES
from .data.request import check_clinic_flags, parse_pairs, resolve
from .errors import CliParser, UserError, cli_entry
from .paths import unwritable
from .physiology.ranges import CFG_SCALE, DDIM_ETA, SEED_MAX, check_count, check_in_range

SUFFIXES = (".png", ".npz")
MAX_N = 100_000  # 80 MB of float32 waveforms, held once in memory and once in the .npz
MAX_PANELS = 64  # a .png draws one panel per waveform: more is unreadable and a huge figure
PROGRESS_FROM = 2048  # a progress bar when generating more waveforms than this (a few DDIM batches)


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(
        prog="python -m abr_tune.sample",
        description="Generate ABR waveforms for one condition with a checkpoint's EMA weights (DDIM).",
        epilog="example: python -m abr_tune.sample --checkpoint runs/cpu/abr_cpu/checkpoints/abr_cpu_best.pt "
               "--age 30 --intensity 80 --rate 21.1 --fmp 3 --n 8 --cfg-scale 1.5 --out samples.png; a model of a "
               "lab's recordings: --condition intensity=70 --condition age=3 --condition time_point=24h",
    )
    p.add_argument("--checkpoint", required=True, help="a .pt checkpoint written by abr-tune")
    p.add_argument("--condition", action="append", metavar="NAME=VALUE",
                   help="a condition the model declares, in its unit or one of its categories (repeat for each; "
                        "NAME= for an empty category)")
    p.add_argument("--age", type=float, help="age in years (the clinic's conditions)")
    p.add_argument("--intensity", type=float, help="stimulus intensity in dB nHL (the clinic's conditions)")
    p.add_argument("--rate", type=float, help="stimulus rate in clicks/s (the clinic's conditions)")
    p.add_argument("--fmp", type=float, help="Fmp response statistic (the clinic's conditions)")
    p.add_argument("--n", type=int, default=8, help="number of waveforms (default 8)")
    p.add_argument("--cfg-scale", type=float, help="classifier-free guidance scale (default: the config's)")
    p.add_argument("--steps", type=int, help="DDIM steps (default: the config's diffusion.sample_steps)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the config's diffusion.ddim_eta)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", default="samples.png", help="output .png (figure) or .npz (arrays); default samples.png")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return p


def _check_args(args: argparse.Namespace) -> Path:
    """Every number in its range and --out writable, before torch or the checkpoint load."""
    check_clinic_flags({name: getattr(args, name) for name in STATIC_NAMES})
    parse_pairs(args.condition)
    check_count("--n", args.n, 1, MAX_N)
    if args.steps is not None:
        check_count("--steps", args.steps, 1)
    if args.cfg_scale is not None:
        check_in_range("--cfg-scale", args.cfg_scale, CFG_SCALE)
    if args.eta is not None:
        check_in_range("--eta", args.eta, DDIM_ETA)
    check_count("--seed", args.seed, 0, SEED_MAX)
    return _check_out(args)


def _check_out(args: argparse.Namespace) -> Path:
    """A .png/.npz file path in a directory that can be written; an existing file only with --force."""
    out = Path(args.out)
    if out.suffix not in SUFFIXES:
        raise UserError(f"--out must end in {' or '.join(SUFFIXES)}, got '{out}'")
    if out.suffix == ".png" and args.n > MAX_PANELS:
        raise UserError(f"--n {args.n} is too many for a .png (one panel per waveform, at most {MAX_PANELS}); "
                        "write an .npz for more")
    if out.is_dir():
        raise UserError(f"--out '{out}' is a directory; pass a file path ending in {' or '.join(SUFFIXES)}")
    if out.exists() and not args.force:
        raise UserError(f"'{out}' already exists; choose another --out or pass --force")
    blocked = unwritable(out.absolute().parent)
    if blocked:
        raise UserError(f"--out '{out}' cannot be written: '{blocked[0]}' {blocked[1]}; "
                        "pass a path in a writable directory")
    return out


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.condition and all(getattr(args, k) is None for k in STATIC_NAMES):
        parser.error("a condition is required: --condition NAME=VALUE for each condition the model declares, or "
                     "--age, --intensity, --rate and --fmp for the clinic's four")
    out = _check_args(args)
    from .checkpoint import GENERATE_KEYS, load_checkpoint  # torch loads here: bad flags fail before it
    from .data import Normaliser
    from .model import Generator

    state = load_checkpoint(args.checkpoint, need=GENERATE_KEYS)
    conditions = Normaliser.from_state_dict(state["normaliser"]).conditions
    raw, labels = resolve(conditions, parse_pairs(args.condition), {k: getattr(args, k) for k in STATIC_NAMES})
    gen = Generator.from_checkpoint(state, sample_steps=args.steps, eta=args.eta)
    for line in gen.normaliser.untrained(raw):
        print(f"abr-tune: warning: {line}", file=sys.stderr)
    d = gen.cfg.diffusion
    ran = {"cfg_scale": d.cfg_scale if args.cfg_scale is None else args.cfg_scale, "sample_steps": d.sample_steps,
           "ddim_eta": d.ddim_eta, "seed": args.seed, "signal_unit": gen.signal_unit}
    signals = _generate(gen, raw, labels, args.n, ran)
    _write(out, signals, Request(raw, labels, gen), ran)
    print(f"abr-tune: wrote {args.n} waveforms to {out} (EMA weights, DDIM {ran['sample_steps']} steps, "
          f"eta {ran['ddim_eta']:g}, CFG {ran['cfg_scale']:g}, seed {args.seed})")
    return 0


def _generate(gen, raw: np.ndarray, labels: np.ndarray | None, n: int, ran: dict) -> np.ndarray:
    """(n, T) µV in bounded batches (`Generator.generate`), with a progress bar on stderr for long runs."""
    from tqdm import tqdm

    with tqdm(total=n, desc="abr-tune: sampling", unit="waveform", disable=n <= PROGRESS_FROM) as bar:
        return gen.generate(raw, repeats=n, cfg_scale=ran["cfg_scale"], seed=ran["seed"], progress=bar.update,
                            labels=labels)[:, 0]


class Request:
    """One condition's values and the time axis of the model that generates for it."""

    def __init__(self, raw: np.ndarray, labels: np.ndarray | None, gen) -> None:
        self.raw, self.labels, self.conditions = raw, labels, gen.normaliser.conditions
        self.sample_rate_hz = gen.cfg.data.effective_rate_hz
        window = gen.cfg.data.window or 0.0  # the start the data's window kept, on the model's sample grid
        self.start_ms = round(window * self.sample_rate_hz / 1000.0) / self.sample_rate_hz * 1000.0


def _write(out: Path, signals: np.ndarray, request: Request, ran: dict) -> None:
    """Through a temporary file in --out's directory: a failed write leaves no partial file and the old one intact."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")  # opened like any new file: the umask's mode
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            _write_to(f, out.suffix, signals, request, ran)
        os.replace(tmp, out)
    except OSError as err:
        raise UserError(f"could not write '{out}' ({err.strerror or err}); nothing was written") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_to(f, suffix: str, signals: np.ndarray, request: Request, ran: dict) -> None:
    n, spec = len(signals), request.conditions
    static = np.repeat(request.raw, n, axis=0)
    if suffix == ".npz":
        time_ms = request.start_ms + np.arange(signals.shape[1]) / request.sample_rate_hz * 1000
        labels = {} if request.labels is None else {"labels": np.repeat(request.labels, n, axis=0),
                                                    "label_order": np.array(spec.labels)}
        np.savez(f, signals=signals, signals_uv=signals, static=static, static_order=np.array(spec.names, dtype=str),
                 static_units=np.array(spec.units, dtype=str), **labels, sample_rate_hz=request.sample_rate_hz,
                 window_start_ms=request.start_ms, patient_id=np.array([f"generated-{i}" for i in range(n)]),
                 time_ms=time_ms, **{k: np.asarray(v) for k, v in ran.items()})
        return
    import matplotlib.pyplot as plt

    from .viz.waveforms import GENERATED_COLOR, waveform_grid

    titles = None if spec.is_clinic else [spec.describe(row, None if request.labels is None else request.labels[0])
                                          for row in static]
    fig = waveform_grid([(signals, "generated", GENERATED_COLOR)], static, request.sample_rate_hz,
                        "Generated ABRs (EMA weights, DDIM)", unit=ran["signal_unit"], titles=titles,
                        start_ms=request.start_ms)
    fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
