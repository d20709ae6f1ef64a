"""Confirming a search's winner over training seeds.

One training seed per configuration cannot tell a better configuration from a lucky one.
After the search, the top K configurations and the base config are trained again over N
seeds (`seed` only: data, split and the validation draw stay fixed) at the searched length,
as Ray trials through the same engine. Each configuration gets its mean with a 95%
t-interval over seeds; each is compared with the base config *paired by seed* (the same seed
gives both the same batches and noise, which removes most of the seed-to-seed variance), and
beats it only when the paired difference's 95% interval lies entirely on the better side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from ..formatting import table

BASE_LABEL = "base"  # the base config's label in the confirmation, transfer and front tables and files


@dataclass
class Candidate:
    """A configuration to confirm: its label (the search trial's id, or "base") and Optuna params."""

    label: str
    params: dict[str, Any]
    search_value: Optional[float] = None  # its best value in the search (one seed), for the table


@dataclass
class Confirmed:
    """One candidate's values over seeds and its paired comparison with the base config."""

    label: str
    params: dict[str, Any]
    values: dict[int, float]  # seed -> best value of that run
    mean: float
    ci95: float  # half-width of the 95% t-interval of the mean (nan with one seed)
    diff_mean: Optional[float] = None  # mean over common seeds of (candidate - base); None for the base
    diff_ci95: Optional[float] = None
    p_value: Optional[float] = None  # paired t-test against the base
    beats_base: bool = False
    worse_than_base: bool = False  # the paired difference's interval lies entirely on the worse side
    search_value: Optional[float] = None
    seeds_missing: list[int] = field(default_factory=list)
    race_note: Optional[str] = None  # racing: what was decided, after how many seeds, and why


def t_half_width(values: list[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean of `values` (nan for fewer than 2)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def paired(candidate: dict[int, float], base: dict[int, float]) -> tuple[float, float, float]:
    """Mean, 95% half-width and two-sided p-value of candidate − base over their common seeds."""
    from scipy import stats

    seeds = sorted(set(candidate) & set(base))
    diffs = [candidate[s] - base[s] for s in seeds]
    if not diffs:
        return math.nan, math.nan, math.nan
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return mean, math.nan, math.nan
    if all(d == diffs[0] for d in diffs):  # no spread: the t-test is undefined, the sign is certain
        return mean, 0.0, 0.0 if mean else 1.0
    p = float(stats.ttest_rel([candidate[s] for s in seeds], [base[s] for s in seeds]).pvalue)
    return mean, t_half_width(diffs), p


def summarise(runs: dict[str, dict[int, float]], candidates: list[Candidate], seeds: list[int],
              mode: str) -> list[Confirmed]:
    """Each candidate's confirmation, best mean first; `runs[label][seed]` is that run's best value.

    A candidate beats the base when the 95% interval of its paired difference lies entirely on
    the better side of 0 (below for mode "min", above for "max").
    """
    base = runs.get(BASE_LABEL, {})
    sign = 1.0 if mode == "min" else -1.0
    rows = []
    for c in candidates:
        values = {s: v for s, v in runs.get(c.label, {}).items() if math.isfinite(v)}
        if not values:
            continue
        row = Confirmed(c.label, c.params, values, sum(values.values()) / len(values),
                        t_half_width(list(values.values())), search_value=c.search_value,
                        seeds_missing=[s for s in seeds if s not in values])
        if c.label != BASE_LABEL and base:
            row.diff_mean, row.diff_ci95, row.p_value = paired(values, base)
            half = row.diff_ci95 if math.isfinite(row.diff_ci95) else math.inf
            row.beats_base = sign * row.diff_mean + half < 0
            row.worse_than_base = sign * row.diff_mean - half > 0
        rows.append(row)
    return sorted(rows, key=lambda r: sign * r.mean)


def verdict_of(beats: bool, worse: bool) -> str:
    return "beats the base" if beats else "worse than the base" if worse else "within seed noise"


def winner(rows: list[Confirmed]) -> Optional[Confirmed]:
    """The best-mean candidate that beats the base beyond seed noise, else None (the base stands)."""
    return next((r for r in rows if r.beats_base), None)


def format_table(rows: list[Confirmed], metric: str, seeds: list[int]) -> str:
    """The confirmation table: mean ± 95% CI over seeds and the paired difference with the base."""
    head = ["candidate", f"{metric} mean ± 95% CI", "search (1 seed)", "vs base (paired)", "p", "verdict"]
    body = []
    for r in rows:
        ci = f" ± {r.ci95:.4f}" if math.isfinite(r.ci95) else ""
        if r.label == BASE_LABEL:
            versus, p, verdict = "-", "-", "the reference"
        else:
            half = f" ± {r.diff_ci95:.4f}" if r.diff_ci95 is not None and math.isfinite(r.diff_ci95) else ""
            versus = f"{100 * r.diff_mean / _base_mean(rows):+.1f}% ({r.diff_mean:+.4f}{half})"
            p = f"{r.p_value:.3g}" if r.p_value is not None and math.isfinite(r.p_value) else "-"
            verdict = verdict_of(r.beats_base, r.worse_than_base)
        search = f"{r.search_value:.4f}" if r.search_value is not None else "-"
        body.append([r.label, f"{r.mean:.4f}{ci}", search, versus, p, verdict])
    lines = table([head, *body])
    notes = [f"  {r.label}: {r.race_note}" for r in rows if r.race_note]
    return "\n".join([f"Confirmation over seeds {', '.join(map(str, seeds))} (data, split and validation "
                      "draw fixed):", *lines, *(["Racing decisions:", *notes] if notes else [])])


def verdict_line(rows: list[Confirmed]) -> str:
    """One plain sentence: which configuration is confirmed, or that none beats the base."""
    best = winner(rows)
    if best is None:
        return ("No configuration beats the base config beyond seed noise: keep the base config "
                "(or search longer, or confirm over more seeds).")
    return (f"Confirmed winner: {best.label}, {100 * best.diff_mean / _base_mean(rows):+.1f}% against the base "
            f"config over {len(best.values)} seeds (95% CI of the paired difference ±{best.diff_ci95:.4f}).")


def _base_mean(rows: list[Confirmed]) -> float:
    base = next((r for r in rows if r.label == BASE_LABEL), None)
    return base.mean if base is not None and base.mean else math.nan
