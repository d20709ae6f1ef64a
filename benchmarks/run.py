"""Run the performance benchmarks, print a table, write benchmarks/results/<name>.json.

    python benchmarks/run.py                 # everything (~37 min on 2 shared cores; figure 9 ~14 of it)
    python benchmarks/run.py --only step,mfu # some sections
    python benchmarks/run.py --quick         # smaller sizes, a smoke run of the harness

Each figure is a ratio of two things measured side by side in one run (see README.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`: make `benchmarks` and `abr_tune` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abr_tune.formatting import table  # noqa: E402
from benchmarks.common import Figure, machine  # noqa: E402

SECTIONS = {  # name -> module: the figures' order
    "step": "step_efficiency", "mfu": "mfu", "sampling": "sampling", "data": "dataset",
    "threads": "threads", "memory": "memory", "search": "search_overhead", "tpe": "tpe_options",
    "mo": "mo_samplers", "gpu": "gpu",
}
RESULTS = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n")[0])
    p.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of every in-process measurement (default 1: one trial per core)")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (checks the harness)")
    p.add_argument("--name", default=None, help="results file name (default: cpu-<date> or quick-<date>)")
    return p


def format_table(figures: list[Figure]) -> str:
    rows = [("section", "figure", "value", "target", "result")]
    for f in figures:
        value = "-" if f.value is None else f"{f.value:.3g} {f.unit}".strip()
        result = {True: "PASS", False: "FAIL", None: "-"}[f.passed]
        rows.append((f.section, f.name, value, f.target, result))
    return "\n".join(table(rows))


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    chosen = opts.only.split(",") if opts.only else list(SECTIONS)
    unknown = [c for c in chosen if c not in SECTIONS]
    if unknown:
        print(f"benchmarks: error: unknown section(s) {unknown}; choose from {list(SECTIONS)}", file=sys.stderr)
        return 2
    started, figures, timings = time.time(), [], {}
    before = machine()
    for name in chosen:
        t0 = time.time()
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{SECTIONS[name]}")
            new = module.measure(opts)
        except Exception as err:  # one broken section must not lose the others' numbers
            traceback.print_exc()
            new = [Figure(name, "error", None, "", "-", False, {"error": repr(err)})]
        timings[name] = round(time.time() - t0, 1)
        for f in new:
            print(f"   {f.name}: {'-' if f.value is None else f'{f.value:.4g}'} {f.unit} (target {f.target})",
                  flush=True)
        figures += new
    print("\n" + format_table(figures))
    name = opts.name or f"{'quick' if opts.quick else 'cpu'}-{time.strftime('%Y%m%d-%H%M%S')}"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps({
        "name": name, "threads": opts.threads, "quick": opts.quick, "wall_sec": round(time.time() - started, 1),
        "section_sec": timings, "machine_before": before, "machine_after": machine(),
        "figures": [f.to_dict() for f in figures]}, indent=1))
    print(f"\n{len(figures)} figures in {time.time() - started:.0f} s -> {out}")
    return 0 if all(f.passed is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
