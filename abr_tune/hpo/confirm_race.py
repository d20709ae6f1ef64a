"""Racing confirmation: the candidates and the base config run a few at a time, and after each
round every paired comparison still open is judged by the anytime-valid confidence sequence of
hpo/race.py (Robbins 1970; Howard et al. 2021), so stopping as soon as one is decided keeps its
error rate.

- Every pair of configurations (the base included) is compared paired by seed; a decision, once
  taken, stands (the sequence holds at every n at once, so the first crossing is as good as any).
- A configuration another one is decided better than cannot win and is dropped.
- A candidate still in the race also needs its comparison with the base decided (the base keeps
  running only while one does).
- A comparison whose mean is so small that, if it held, the sequence would still hold 0 at the seed
  cap is closed as "within seed noise" (futility): it could not be decided in the seeds left. Any
  stopping rule keeps a confidence sequence's error rate, so this one costs power, never validity.
- The stage stops when no comparison that matters is open, or at the seed cap (`confirm.seeds`).
- Each round fills the parallel slots (`max_concurrent`) with the runs the open comparisons need,
  fewest seeds first; each round is a Tune experiment of its own, `<stage>/round<N>/`, so an
  interrupted race continues where it stopped (the rounds replay from their finished runs).
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .confirm import BASE_LABEL, Candidate, Confirmed, verdict_line
from .race import compare, cs_radius, pooled_sigma, race_sigma

SIGMA_FLOOR = 0.01  # without a declared spread the paired spread is taken as at least 1% of the base mean
FUTILITY_SE = 0.0  # a comparison is "within noise" when |mean| + this many standard errors < the cap's radius


def _key(a: str, b: str) -> str:
    return f"{a} vs {b}"


def _diffs(values: dict[str, dict[int, float]], a: str, b: str) -> list[float]:
    va, vb = values.get(a, {}), values.get(b, {})
    return [va[s] - vb[s] for s in sorted(set(va) & set(vb)) if math.isfinite(va[s]) and math.isfinite(vb[s])]


def decide(values: dict[str, dict[int, float]], labels: list[str], mode: str, alpha: float, cap: int,
           spread: Optional[float] = None, settled: Optional[dict[str, dict]] = None) -> dict[str, Any]:
    """The race's state after the runs in `values` ({label: {seed: value}}; `labels` the candidates in
    rank order): every pair's comparison (`settled` carries the decisions of earlier rounds: they
    stand), the configurations dropped and by whom, those still in, the comparisons still needed.
    Pair "a vs b" compares a - b with a ranked before b, the base last."""
    configs = [*labels, BASE_LABEL]
    pairs = [(a, b) for i, a in enumerate(configs) for b in configs[i + 1:]]
    base = [v for v in values.get(BASE_LABEL, {}).values() if math.isfinite(v)]
    base_mean = sum(base) / len(base) if base else math.nan
    sigma = race_sigma({_key(a, b): _diffs(values, a, b) for a, b in pairs}, base_mean,
                       spread if spread else SIGMA_FLOOR)
    min_seeds = 1 if spread else 2
    comparisons = dict(settled or {})
    for a, b in pairs:
        k = _key(a, b)
        if comparisons.get(k, {}).get("decision") in ("better", "worse", "noise"):
            continue
        c = compare(_diffs(values, a, b), sigma, alpha, mode, min_seeds)
        decision = c.decision
        if decision == "undecided" and c.n >= min_seeds \
                and abs(c.mean) + FUTILITY_SE * sigma / math.sqrt(c.n) < cs_radius(cap, sigma, alpha):
            decision = "noise"  # even if its mean held, the sequence would still hold 0 at the cap: stop it
        comparisons[k] = {"decision": decision, "n": c.n, "mean": c.mean, "radius": c.radius, "sigma": sigma}
    dropped: dict[str, str] = {}
    for a, b in pairs:
        d = comparisons[_key(a, b)]["decision"]
        if d in ("better", "worse"):
            loser, by = (b, a) if d == "better" else (a, b)
            dropped.setdefault(loser, by)
    alive = [c for c in configs if c not in dropped]
    needed = [[a, b] for a, b in pairs if comparisons[_key(a, b)]["decision"] == "undecided"
              and ((a in alive and b in alive) or (b == BASE_LABEL and a in alive))]
    seen = pooled_sigma([_diffs(values, a, b) for a, b in pairs]) / abs(base_mean) if base_mean else math.nan
    return {"sigma": sigma, "spread_seen": seen, "comparisons": comparisons, "dropped": dropped, "alive": alive,
            "needed": needed, "winner": _winner(comparisons, alive, labels, mode)}


def _winner(comparisons: dict[str, dict], alive: list[str], labels: list[str], mode: str) -> str:
    """The best candidate still in the race that is decided better than the base, else the base."""
    beats = [lb for lb in labels if lb in alive and comparisons[_key(lb, BASE_LABEL)]["decision"] == "better"]
    sign = 1.0 if mode == "min" else -1.0
    return min(beats, key=lambda lb: sign * comparisons[_key(lb, BASE_LABEL)]["mean"], default=BASE_LABEL)


def next_runs(ran: dict[str, int], needed: list[list[str]], order: list[str], cap: int, slots: int,
              dropped: frozenset[str] = frozenset()) -> list[tuple[str, int]]:
    """The next round: up to `slots` runs (label, seed index) for the configurations in a needed
    comparison, fewest seeds first (ties: `order`), so that each pair's seeds stay matched. A dropped
    configuration (the base, kept as the reference) only catches up with its partners' seeds."""
    partners: dict[str, set[str]] = {}
    for a, b in needed:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    planned, runs = dict(ran), []
    while len(runs) < slots:
        pool = [c for c in order if c in partners and planned[c] < cap
                and (c not in dropped or planned[c] < max(planned[p] for p in partners[c]))]
        if not pool:
            break
        c = min(pool, key=lambda x: (planned[x], order.index(x)))
        runs.append((c, planned[c]))
        planned[c] += 1
    return runs


def race(exp: Any, cands: list[Candidate], seeds: list[int], arrays: Any, stage: str, metric: str,
         mode: str, alpha: float, run_round: Any, slots: int = 2,
         spread: Optional[float] = None) -> tuple[dict, int, dict]:
    """Run the race; `run_round(exp, cands, seeds, arrays, stage, only=[(label, seed), ...])` is the
    confirmation's runner. Returns (runs {label: {seed: metrics}}, runs missing (interrupted), the
    race's record: each round's runs and new decisions, the final state, the winner)."""
    labels = [c.label for c in cands if c.label != BASE_LABEL]
    order = [BASE_LABEL, *labels]  # ties go to the base: every comparison with it needs its runs
    by_label = {c.label: c for c in cands}
    runs: dict[str, dict[int, dict]] = {}
    ran = dict.fromkeys(order, 0)
    state = decide({}, labels, mode, alpha, len(seeds), spread)
    rounds: list[dict] = []
    while plan := next_runs(ran, state["needed"], order, len(seeds), slots, frozenset(state["dropped"])):
        only = [(lb, seeds[i]) for lb, i in plan]
        round_cands = [by_label[lb] for lb in order if any(lb == x for x, _ in only)]
        got, missing = run_round(exp, round_cands, sorted({s for _, s in only}), arrays,
                                 f"{stage}/round{len(rounds) + 1}", only=only)
        for lb, by_seed in got.items():
            runs.setdefault(lb, {}).update(by_seed)
        if missing:
            return runs, missing, {"rounds": rounds}
        for lb, _ in plan:
            ran[lb] += 1
        before = state["comparisons"]
        primary = {lb: {s: row[metric] for s, row in by_seed.items()} for lb, by_seed in runs.items()}
        state = decide(primary, labels, mode, alpha, len(seeds), spread, before)
        new = [k for k, d in state["comparisons"].items()
               if d["decision"] != "undecided" and before.get(k, {}).get("decision") != d["decision"]]
        rounds.append({"round": len(rounds) + 1, "ran": [list(x) for x in only], "sigma": state["sigma"],
                       "decided": new})
    return runs, 0, {"rounds": rounds, "seeds_run": ran, **state}


def race_notes(record: dict, cap: int) -> dict[str, str]:
    """Per configuration, what was decided, after how many seeds, and why (for the table and the summary)."""
    if "comparisons" not in record:
        return {}
    comps, dropped, ran = record["comparisons"], record["dropped"], record["seeds_run"]
    notes = {}
    for lb, n in ran.items():
        parts = []
        if lb != BASE_LABEL:
            d = comps[_key(lb, BASE_LABEL)]
            why = (f"mean paired difference {d['mean']:+.4g}, confidence sequence ±{d['radius']:.4g} "
                   f"(sigma {d['sigma']:.3g})")
            parts.append({"undecided": f"undecided against the base ({d['n']} paired seeds): {why}",
                          "noise": f"within seed noise of the base after {d['n']} of {cap} seeds (stopped: even "
                                   f"at the cap the sequence would hold 0 at this mean): {why}"}.get(
                d["decision"], f"{d['decision']} than the base after {d['n']} of {cap} seeds: {why}"))
        if lb in dropped:
            by = dropped[lb]
            d = comps.get(_key(lb, by)) or comps[_key(by, lb)]
            parts.append(f"dropped after {n} of {cap} seeds: {by} is better ({d['n']} paired seeds, "
                         f"difference {abs(d['mean']):.4g} ± {d['radius']:.4g})")
        elif lb == record["winner"]:
            rivals = [c for c in record["alive"] if c != lb]
            parts.append(f"the winner by its mean; not told apart from {', '.join(rivals)}" if rivals
                         else f"the winner after {n} of {cap} seeds: every other configuration is decided worse")
        elif n >= cap:
            parts.append(f"undecided at the seed cap ({n} of {cap} seeds)")
        notes[lb] = "; ".join(parts)
    return notes


def racing_plan_text(n_cands: int, seeds: list[int], max_t: int, alpha: float, slots: int) -> str:
    return (f"Racing {n_cands} configurations and the base, {slots} runs at a time (at most {len(seeds)} seeds "
            f"each, {max_t} epochs a run; anytime-valid decisions at alpha {alpha}) ...")


def raced_rows(rows: list[Confirmed], record: dict, cap: int) -> list[Confirmed]:
    """The confirmation rows with the race's verdicts (not the fixed-n t-interval's, which does not
    hold under optional stopping) and each row's note: what was decided, after how many seeds, why."""
    comps, notes = record.get("comparisons", {}), race_notes(record, cap)
    for r in rows:
        d = comps.get(_key(r.label, BASE_LABEL))
        if d is not None:
            r.beats_base, r.worse_than_base = d["decision"] == "better", d["decision"] == "worse"
        r.race_note = notes.get(r.label)
        r.seeds_missing = []  # a raced configuration stopped when decided: its other seeds were never due
    return rows


def race_verdict(rows: list[Confirmed], record: dict) -> str:
    """The verdict sentence for the race's winner (the base when no candidate is decided better)."""
    label = record.get("winner", BASE_LABEL)
    row = next((r for r in rows if r.label == label), None)
    base = next((r for r in rows if r.label == BASE_LABEL), None)
    if label == BASE_LABEL or row is None or base is None:
        return verdict_line([])
    d = record["comparisons"][_key(label, BASE_LABEL)]
    return (f"Confirmed winner: {label}, {100 * d['mean'] / base.mean:+.1f}% against the base config over "
            f"{d['n']} seed{'s' if d['n'] > 1 else ''} (anytime-valid confidence sequence of the paired "
            f"difference ±{d['radius']:.4f}).")


def spread_line(record: dict, declared: Optional[float]) -> str:
    """What the race saw of the paired seed-to-seed spread, and how to declare it for the next race."""
    seen = record.get("spread_seen", math.nan)
    if not math.isfinite(seen):
        return "Paired seed spread: not measured (no pair ran 2 common seeds)."
    told = f"declared {100 * declared:.2g}%" if declared else "none declared: no decision before 2 seeds"
    return (f"Paired seed spread seen: {100 * seen:.2g}% of the base value ({told}); `confirm: {{spread: "
            f"{1.5 * seen:.2g}}}` in the space file (1.5x, a margin over a few seeds' estimate) lets later races "
            f"of this problem decide from the first seed.")
