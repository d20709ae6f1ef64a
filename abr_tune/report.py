"""`python -m abr_tune.report <experiment dir>`: write a finished search's report (see `abr_tune.hpo.report`)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from .errors import CliParser, UserError, cli_entry
from .hpo.report import INDEX_HTML, REPORT_DIR, SAMPLE_CONDITIONS, SUMMARY_MD, write_report

__all__ = ["INDEX_HTML", "REPORT_DIR", "SUMMARY_MD", "main", "write_report"]


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="python -m abr_tune.report", description=(
        "Write the report of a finished search into <experiment>/report/: summary.md, a self-contained "
        "index.html, learning curves, parameters against the metric, parameter importance and the best "
        "trial's samples."),
        epilog="example: python -m abr_tune.report runs/search/lr_stft-20260101-120000")
    p.add_argument("experiment", metavar="DIR", help="the search's experiment directory (holds search_summary.json)")
    p.add_argument("--conditions", type=int, default=SAMPLE_CONDITIONS, metavar="N",
                   help=f"conditions in best_trial_samples.png (default {SAMPLE_CONDITIONS}; 0 skips sampling, "
                        "also the sampling-noise re-scoring of a search with sample metrics)")
    return p


@cli_entry
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.conditions < 0:
        raise UserError(f"--conditions must be >= 0, got {args.conditions}")
    out = write_report(args.experiment, conditions=args.conditions)
    print(f"Report: {out / INDEX_HTML} (open it in a browser; {out / SUMMARY_MD} for text)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
