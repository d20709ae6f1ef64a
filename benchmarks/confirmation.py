"""Racing vs fixed confirmation: the decision's error rates by simulation, and the stage's time.

(a) Simulation: K candidates and the base config over seeds, each seed's value
    base + effect + shared seed noise + the candidate's own paired noise (sd `--sigma-rel` × base, the
    seed-to-seed spread of the paired difference; `--from-summary` measures it from a finished
    confirmation's search_summary.json). The race is the real `race()` of abr_tune.hpo.confirm_race
    with a fake runner; the fixed stage is today's rule (95% paired t-interval over all seeds).
    Reported: the false "beats the base" rate at effect 0, the power at a real effect, and the runs
    used ÷ the fixed stage's runs (the seed-count ratio).
(b) `--time SPACE`: the confirmation stage of a search space run with confirm.race true and false,
    alternated, on this machine; the stage's wall time from the search's stdout.

    PYTHONPATH=. python benchmarks/confirmation.py [--sigma-rel 0.02] [--trials 2000] [--cap 3]
    PYTHONPATH=. python benchmarks/confirmation.py --time search_spaces/lr_stft.yaml --pairs 1
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import yaml

from abr_tune.hpo.confirm import BASE_LABEL, Candidate, summarise, winner
from abr_tune.hpo.confirm_race import race

ROOT = Path(__file__).resolve().parents[1]


def measured_sigma_rel(summary_path: Path) -> float:
    """The pooled sd of (candidate − base) over seeds, each candidate about its own mean, ÷ the base mean."""
    rows = json.loads(summary_path.read_text())["confirmation"]["rows"]
    base = next(r for r in rows if r["label"] == BASE_LABEL)["values"]
    groups = [[v - base[s] for s, v in r["values"].items() if s in base] for r in rows if r["label"] != BASE_LABEL]
    ss = sum(sum((x - statistics.fmean(g)) ** 2 for x in g) for g in groups)
    df = sum(len(g) - 1 for g in groups)
    return math.sqrt(ss / df) / abs(statistics.fmean(base.values()))


def simulate(effects: list[float], sigma_rel: float, cap: int, trials: int, alpha: float, seed: int = 0,
             spread: Optional[float] = None, slots: int = 2) -> dict:
    """One scenario: candidates with relative `effects` (negative = better, mode min) against a base of 1.
    Each configuration's value at a seed: 1 + effect + the seed's shared noise (sd 5%) + its own noise of sd
    sigma_rel/sqrt(2), so that every paired difference has sd sigma_rel. The race declares `spread` (None:
    the plug-in). Time in waves: a round of the race is one wave of `slots` runs; the fixed stage's runs
    fill ceil(runs / slots) waves (every run the same length)."""
    rng = random.Random(seed)
    labels = [f"c{i}" for i in range(len(effects))]
    cands = [*(Candidate(lb, {"i": i}) for i, lb in enumerate(labels)), Candidate(BASE_LABEL, {})]
    seeds = list(range(1, cap + 1))
    raced_beats, fixed_beats, runs, waves, agree = [0] * len(labels), [0] * len(labels), 0, 0, 0
    own = sigma_rel / math.sqrt(2)
    for _ in range(trials):
        shared = {s: rng.gauss(0, 0.05) for s in seeds}
        values = {lb: {s: 1.0 + eff + shared[s] + rng.gauss(0, own) for s in seeds}
                  for lb, eff in zip([*labels, BASE_LABEL], [*effects, 0.0], strict=True)}

        def run_round(exp, cs, ss, arrays, stage, only, values=values):
            got: dict = {}
            for lb, s in only:
                got.setdefault(lb, {})[s] = {"m": values[lb][s]}
            return got, 0

        _, _, record = race(None, cands, seeds, None, "confirm", "m", "min", alpha, run_round, slots, spread)
        runs += sum(len(r["ran"]) for r in record["rounds"])
        waves += len(record["rounds"])
        rows = summarise(values, cands, seeds, "min")
        fixed = {r.label: r for r in rows}
        agree += record["winner"] == (winner(rows).label if winner(rows) else BASE_LABEL)
        for i, lb in enumerate(labels):
            raced_beats[i] += record["comparisons"][f"{lb} vs {BASE_LABEL}"]["decision"] == "better"
            fixed_beats[i] += fixed[lb].beats_base
    fixed_runs = len(cands) * cap
    return {"effects": effects, "sigma_rel": sigma_rel, "spread": spread, "cap": cap, "trials": trials,
            "raced_beats_rate": [b / trials for b in raced_beats],
            "fixed_beats_rate": [b / trials for b in fixed_beats],
            "runs_ratio": round(runs / (trials * fixed_runs), 3),
            "time_ratio": round(waves / (trials * math.ceil(fixed_runs / slots)), 3),
            "same_winner": agree / trials}


def time_stage(space: Path, race_on: bool, workdir: Path, smoke: bool = False) -> float:
    """Run the search of `space` with confirm.race set; the confirmation stage's seconds (stdout marks)."""
    raw = yaml.safe_load(space.read_text())
    raw.setdefault("confirm", {})["race"] = race_on
    if "base_config" in raw:
        raw["base_config"] = str((space.parent / raw["base_config"]).resolve())
    path = workdir / f"space_race{int(race_on)}.yaml"
    path.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-u", "-m", "abr_tune.search", "--space", str(path), "--name", f"race{int(race_on)}",
           "--storage-path", str(workdir / f"runs{int(race_on)}_{time.time_ns()}")]
    cmd += ["--smoke-test"] if smoke else []
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = end = None
    for line in proc.stdout:
        if start is None and (line.startswith("Racing ") or line.startswith("Confirming ")):
            start = time.perf_counter()
        if start is not None and line.startswith("Best config (confirmed)"):
            end = time.perf_counter()
    proc.wait()
    if start is None or end is None:
        raise SystemExit(f"abr-tune: error: the search with race={race_on} did not confirm (exit {proc.returncode})")
    return end - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigma-rel", type=float, default=0.02)
    ap.add_argument("--from-summary", type=Path)
    ap.add_argument("--cap", type=int, default=3)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--effect", type=float, default=-0.05, help="the real effect for the power scenario")
    ap.add_argument("--time", type=Path, help="a search space to time the confirmation stage on")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="time the space's --smoke-test (seconds, not minutes)")
    args = ap.parse_args()
    sigma = measured_sigma_rel(args.from_summary) if args.from_summary else args.sigma_rel
    out = {"null": simulate([0.0, 0.0], sigma, args.cap, args.trials, args.alpha),
           "one_real": simulate([args.effect, 0.0], sigma, args.cap, args.trials, args.alpha, seed=1)}
    if args.time:
        with tempfile.TemporaryDirectory() as tmp:
            pairs = [tuple(time_stage(args.time, on, Path(tmp), args.smoke) for on in (True, False))
                     for _ in range(args.pairs)]
        out["timing"] = {"raced_s": [p[0] for p in pairs], "fixed_s": [p[1] for p in pairs],
                         "ratio_median": statistics.median(p[0] / p[1] for p in pairs)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
