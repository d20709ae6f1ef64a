"""Racing vs fixed confirmation: the decision's error rates and the stage's runs and time, by simulation
and measured.

(a) Simulation: 2 candidates and the base config over at most `--cap` seeds, each seed's value
    1 + effect + the seed's shared noise + the configuration's own noise, such that every paired
    difference has sd `--sigma-rel` (× the base value; measured on the quick start, or
    `--from-summary` from a finished fixed confirmation's search_summary.json). The race is the real
    `race()` of abr_tune.hpo.confirm_race with a fake runner, 2 runs at a time, with and without a
    declared `--spread`; the fixed stage is the 95% paired t-interval over all seeds. Scenarios: no
    difference (every "beats the base" false), the two quick starts measured, a gain near the noise.
    Reported per row: false/true "beats the base" per candidate, raced (fixed); runs ÷ the fixed
    stage's; time ÷ the fixed stage's (a round of the race is one wave of 2 runs; the fixed stage's
    runs fill ceil(runs / 2) waves); how often the race picks the fixed stage's winner.
(b) `--time-experiment DIR`: the confirmation stage of a finished search re-run raced and fixed,
    alternated (race first), on a copy, on this machine. `--time SPACE` times whole searches instead.

    PYTHONPATH=. python benchmarks/confirmation.py [--sigma-rel 0.0074 0.0156] [--spread 0 0.012] [--trials 1000]
    PYTHONPATH=. python benchmarks/confirmation.py --trials 10 --time-experiment runs/search/<name> --pairs 1
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


SCENARIOS = {  # relative effects of the top 2 against the base (mode min: negative is better)
    "null": [0.0, 0.0],                     # nothing differs: every "beats the base" is false
    "quick start A": [-0.033, 0.005],       # the quick start measured in benchmarks/README (top 2)
    "quick start B": [-0.081, -0.069],      # the quick start measured 2026-12-05 (both real)
    "small gain": [-0.02, 0.0],             # a gain near the noise
}


def confirm_only(experiment: Path, race_on: bool, stage: str) -> float:
    """Re-run the confirmation stage of the finished search in `experiment` (raced or fixed) into
    `<experiment>/<stage>/`; its wall seconds. Run in a process of its own (it starts Ray)."""
    import dataclasses
    import os

    import ray

    from abr_tune.hpo.confirm_run import confirm_search
    from abr_tune.hpo.plan import plan_resume, previous_summary
    from abr_tune.hpo.tuner import load_data
    from abr_tune.search import build_parser

    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    exp = plan_resume(build_parser().parse_args(["--resume", str(experiment)]))
    exp.space = dataclasses.replace(exp.space, confirm=dataclasses.replace(exp.space.confirm, race=race_on))
    summary = previous_summary(exp)
    arrays = load_data(exp.space)
    ray.init(include_dashboard=False)
    started = time.perf_counter()
    confirm_search(exp, summary, arrays, exp.space.confirm.top_k, exp.space.confirm.seeds, stage)
    seconds = time.perf_counter() - started
    ray.shutdown()
    return seconds


def time_experiment(experiment: Path, pairs: int) -> dict:
    """The confirmation stage of one finished search, raced and fixed, alternated (race first), on a copy."""
    import shutil

    out: dict = {"raced_s": [], "fixed_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / experiment.name
        shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns("confirm*", "report"))
        for i in range(pairs):
            for race_on in (True, False):
                code = ("import sys, json; from pathlib import Path; from benchmarks.confirmation import confirm_only; "
                        f"print(json.dumps(confirm_only(Path({str(copy)!r}), {race_on}, 'timing_{int(race_on)}_{i}')))")
                done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"abr-tune: error: the confirmation re-run failed: {done.stderr[-2000:]}")
                out["raced_s" if race_on else "fixed_s"].append(float(done.stdout.strip().splitlines()[-1]))
                if race_on:
                    race = json.loads((copy / "search_summary.json").read_text())["confirmation"]["race"]
                    out.setdefault("raced_runs", []).append(race["runs"])
                    out["fixed_runs"] = race["runs_fixed"]
    out["ratio"] = [r / f for r, f in zip(out["raced_s"], out["fixed_s"], strict=True)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigma-rel", type=float, nargs="+", default=[0.0074, 0.0114, 0.0156],
                    help="true paired spreads ÷ base (default: the quick start 0.74%%, 1.56%%, pooled 1.14%%)")
    ap.add_argument("--from-summary", type=Path, help="measure the spread from a finished fixed confirmation")
    ap.add_argument("--spread", type=float, nargs="+", default=[0.0, 0.012],
                    help="the race's declared spread (0: none, decisions from 2 seeds)")
    ap.add_argument("--cap", type=int, default=3)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--time", type=Path, help="a search space to time the confirmation stage on (whole searches)")
    ap.add_argument("--time-experiment", type=Path, help="a finished search: re-run its confirmation, raced and fixed")
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="time the space's --smoke-test (seconds, not minutes)")
    args = ap.parse_args()
    sigmas = [measured_sigma_rel(args.from_summary)] if args.from_summary else args.sigma_rel
    out: dict = {"simulation": []}
    for sigma in sigmas:
        for spread in args.spread:
            for i, (name, effects) in enumerate(SCENARIOS.items()):
                r = simulate(effects, sigma, args.cap, args.trials, args.alpha, seed=i, spread=spread or None)
                out["simulation"].append({"scenario": name, **r})
                print(f"| {100 * sigma:.2f}% | {f'{100 * spread:.1f}%' if spread else 'none'} | {name} | "
                      + ", ".join(f"{100 * b:.1f}%" for b in r["raced_beats_rate"]) + " ("
                      + ", ".join(f"{100 * b:.1f}%" for b in r["fixed_beats_rate"]) + f") | {r['runs_ratio']:.2f} | "
                      f"{r['time_ratio']:.2f} | {100 * r['same_winner']:.0f}% |", flush=True)
    if args.time:
        with tempfile.TemporaryDirectory() as tmp:
            pairs = [tuple(time_stage(args.time, on, Path(tmp), args.smoke) for on in (True, False))
                     for _ in range(args.pairs)]
        out["timing"] = {"raced_s": [p[0] for p in pairs], "fixed_s": [p[1] for p in pairs],
                         "ratio_median": statistics.median(p[0] / p[1] for p in pairs)}
    if args.time_experiment:
        out["timing_experiment"] = time_experiment(args.time_experiment, args.pairs)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
