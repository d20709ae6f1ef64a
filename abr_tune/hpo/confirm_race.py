"""Racing confirmation: the candidates and the base config run seed by seed, and a candidate stops
once its paired comparison with the base (and the leader's with the runner-up) is decided by the
anytime-valid confidence sequence of hpo/race.py; the stage stops when nothing is left undecided or
at the seed cap (the space's `confirm.seeds`). Each seed's runs are a Tune experiment of their own,
`<stage>/seed<N>/`, so an interrupted race continues where it stopped.
"""

from __future__ import annotations

import math
from typing import Any

from .confirm import BASE_LABEL, Candidate
from .race import compare, race_sigma

SIGMA_FLOOR = 0.01  # the paired spread is taken as at least 1% of the base mean (two seeds agreeing is luck)


def decide(primary: dict[str, dict[int, float]], labels: list[str], mode: str, alpha: float) -> dict[str, dict]:
    """Each candidate's decision against the base so far, and the leader's against the runner-up:
    {label: {"n", "vs_base", "mean", "radius", "vs_runner_up"}}."""
    base = primary.get(BASE_LABEL, {})
    diffs = {lb: [v - base[s] for s, v in sorted(primary.get(lb, {}).items()) if s in base and math.isfinite(v)]
             for lb in labels}
    base_mean = sum(base.values()) / len(base) if base else math.nan
    sigma = race_sigma(diffs, base_mean, SIGMA_FLOOR)
    out = {}
    for lb in labels:
        c = compare(diffs[lb], sigma, alpha, mode)
        out[lb] = {"n": c.n, "vs_base": c.decision, "mean": c.mean, "radius": c.radius, "sigma": sigma,
                   "vs_runner_up": None}
    better = sorted((lb for lb in labels if out[lb]["vs_base"] == "better"),
                    key=lambda lb: out[lb]["mean"] if mode == "min" else -out[lb]["mean"])
    if len(better) >= 2:
        lead, second = better[0], better[1]
        pair = [primary[lead][s] - primary[second][s] for s in sorted(primary[lead]) if s in primary[second]]
        out[lead]["vs_runner_up"] = out[second]["vs_runner_up"] = compare(pair, sigma, alpha, mode).decision
    return out


def still_racing(decisions: dict[str, dict]) -> list[str]:
    """The candidates that need another seed: undecided against the base, or one of a leading pair
    not yet told apart."""
    return [lb for lb, d in decisions.items()
            if d["vs_base"] == "undecided" or d["vs_runner_up"] == "undecided"]


def race(exp: Any, cands: list[Candidate], seeds: list[int], arrays: Any, stage: str, metric: str,
         mode: str, alpha: float, run_round: Any) -> tuple[dict, int, list[dict]]:
    """Run the race; `run_round(exp, cands, [seed], arrays, stage)` is the confirmation's runner.
    Returns (runs {label: {seed: metrics}}, runs missing (interrupted), the log of each seed's round)."""
    labels = [c.label for c in cands if c.label != BASE_LABEL]
    by_label = {c.label: c for c in cands}
    active, runs, log = list(labels), {}, []
    for seed in seeds:
        round_cands = [by_label[lb] for lb in active] + [by_label[BASE_LABEL]]
        got, missing = run_round(exp, round_cands, [seed], arrays, f"{stage}/seed{seed}")
        for lb, by_seed in got.items():
            runs.setdefault(lb, {}).update(by_seed)
        if missing:
            return runs, missing, log
        primary = {lb: {s: row[metric] for s, row in by_seed.items()} for lb, by_seed in runs.items()}
        decisions = decide(primary, labels, mode, alpha)
        active = still_racing(decisions)
        log.append({"seed": seed, "ran": [c.label for c in round_cands], "decisions": decisions})
        if not active:
            break
    return runs, 0, log


def race_notes(log: list[dict], cap: int) -> dict[str, str]:
    """Per candidate, what was decided, after how many seeds, and why (for the table and the summary)."""
    if not log:
        return {}
    final = log[-1]["decisions"]
    notes = {}
    for lb, d in final.items():
        n = d["n"]
        why = (f"mean paired difference {d['mean']:+.4g}, confidence sequence ±{d['radius']:.4g} "
               f"(sigma {d['sigma']:.3g})")
        if d["vs_base"] == "undecided":
            notes[lb] = f"undecided at the seed cap ({n} of {cap} seeds): {why}"
        else:
            tail = f"; against the runner-up: {d['vs_runner_up']}" if d["vs_runner_up"] else ""
            notes[lb] = f"{d['vs_base']} than the base after {n} of {cap} seeds: {why}{tail}"
    return notes


def racing_plan_text(n_cands: int, seeds: list[int], max_t: int, alpha: float) -> str:
    return (f"Racing {n_cands} configurations and the base seed by seed (at most {len(seeds)} seeds, "
            f"{max_t} epochs each; anytime-valid decisions at alpha {alpha}) ...")


def raced_rows(rows: list, log: list[dict], cap: int) -> list:
    """The confirmation rows with the race's verdicts (not the fixed-n t-interval's, which does not
    hold under optional stopping) and each row's note: what was decided, after how many seeds, why."""
    final, notes = log[-1]["decisions"] if log else {}, race_notes(log, cap)
    for r in rows:
        d = final.get(r.label)
        if d is not None:
            r.beats_base, r.worse_than_base = d["vs_base"] == "better", d["vs_base"] == "worse"
            r.race_note = notes[r.label]
        r.seeds_missing = []  # a raced candidate stopped when decided: its other seeds were never due
    return rows
