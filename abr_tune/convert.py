"""`python -m abr_tune.convert MANIFEST.csv --out recordings.npz`: a lab's recording files to one training file.

Reads every file the manifest lists (BioSigRZ .arf, BioSigRZ CSV export, EPL; see
`abr_tune.data.manifest` for the manifest's columns), prints what was kept and dropped, and writes
an .npz: signals [N, T] float32 µV, sample_rate_hz, patient_id, static [N, K] with static_order and
static_units (the level is `intensity` in dB SPL; `frequency` in Hz, 0 for click, when more than one
stimulus is kept; then the manifest's numeric conditions), labels [N, C] with label_order,
source_file, source_record, n_averages, and species when the manifest names one.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from .data.conversion import arrays, convert
from .data.conversion_report import summary
from .data.manifest import read_manifest
from .data.recording import CLICK_HZ
from .errors import CliParser, UserError, cli_entry
from .paths import unwritable

MAX_TONE_HZ = 200_000.0  # above any species' hearing range (mice hear to ~100 kHz)


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="python -m abr_tune.convert",
                  description="Convert a lab's ABR recording files, listed in a manifest CSV, into one .npz "
                              "training file.",
                  epilog="example: python -m abr_tune.convert manifest.csv --out recordings.npz --stimulus click")
    p.add_argument("manifest", help="CSV with a 'file' column (paths relative to its folder), a 'subject' column "
                                    "and one column per further condition")
    p.add_argument("--out", required=True, help="the .npz to write")
    p.add_argument("--stimulus", help="keep one stimulus: 'click' or a tone frequency in Hz (e.g. 16000)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return p


def _stimulus_hz(text: str | None) -> float | None:
    if text is None:
        return None
    if text.strip().lower() == "click":
        return CLICK_HZ
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_TONE_HZ:
        raise UserError(f"--stimulus must be 'click' or a tone frequency in Hz in (0, {MAX_TONE_HZ:g}], got '{text}'")
    return value


def _check_out(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if out.suffix != ".npz":
        raise UserError(f"--out must end in .npz, got '{out}'")
    if out.is_dir():
        raise UserError(f"--out '{out}' is a directory; pass a file path ending in .npz")
    if out.exists() and not args.force:
        raise UserError(f"'{out}' already exists; choose another --out or pass --force")
    blocked = unwritable(out.absolute().parent)
    if blocked:
        raise UserError(f"--out '{out}' cannot be written: '{blocked[0]}' {blocked[1]}")
    return out


def _write(out: Path, members: dict[str, np.ndarray]) -> None:
    """Through a temporary file beside --out: a failed write leaves no partial file and the old one intact."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **members)
        os.replace(tmp, out)
    except OSError as err:
        raise UserError(f"could not write '{out}' ({err.strerror or err}); nothing was written") from None
    finally:
        tmp.unlink(missing_ok=True)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stimulus_hz, out = _stimulus_hz(args.stimulus), _check_out(args)
    result = convert(read_manifest(args.manifest), stimulus_hz)
    members = arrays(result)
    for line in summary(result, members):
        print(line)
    _write(out, members)
    print(f"wrote {len(members['signals'])} recordings to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
