"""Racing statistics: an anytime-valid confidence sequence for a paired difference over seeds.

The confirmation adds one training seed at a time and looks after each one, so a test whose
error rate holds only at a fixed n (a t-test repeated after every seed) would be fooled by
optional stopping. We use Robbins' normal-mixture confidence sequence (Robbins 1970,
"Statistical methods related to the law of the iterated logarithm"; in the form of Howard,
Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 49(2), eq. (3.7) / Prop. 3): for i.i.d. sigma-sub-Gaussian paired
differences d_i with mean mu, S_n = sum(d_i - mu) and V_n = sigma**2 * n, the mixture
martingale sqrt(rho / (V_n + rho)) * exp(S_n**2 / (2 (V_n + rho))) is >= 1/alpha with
probability <= alpha at ANY n (Ville's inequality), i.e. for all n at once

    |mean_n - mu| < sqrt((V_n + rho) * log((V_n + rho) / (rho * alpha**2))) / n.

The mixing scale rho is fixed before the data as sigma**2 / 4 (RHO_FACTOR), which makes the
radius smallest around n = 1-3, the seed counts a confirmation decides at; any rho chosen in
advance keeps the guarantee.

The scale sigma is the seed-to-seed spread of the paired difference. With a declared spread
(measured once on the problem) it is known in advance and the guarantee is exact for
differences that are sigma-sub-Gaussian; decisions may then come from the first seed. The
spread seen so far (pooled over the pairs, each about its own mean) can only widen it: the
radius grows with sigma, so every decision taken with the larger sigma is one the declared
sigma's sequence takes too. Without a declared spread sigma is that plug-in, floored at a
fraction of the base value, and no decision is taken before 2 seeds; the plug-in makes the
guarantee approximate, and benchmarks/confirmation.py measures the error rate by simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

Decision = Literal["better", "worse", "undecided"]


RHO_FACTOR = 0.25  # rho = sigma**2 / 4: the narrowest radius at n = 1-3 (at n = 1: 3.08 sigma, 3.66 at rho = sigma**2)


def cs_radius(n: int, sigma: float, alpha: float, rho: Optional[float] = None) -> float:
    """Half-width of the two-sided normal-mixture confidence sequence for a mean after n
    observations (Howard et al. 2021, eq. 3.7); rho defaults to RHO_FACTOR * sigma**2."""
    if n < 1:
        return math.inf
    if sigma <= 0:
        return 0.0
    rho = RHO_FACTOR * sigma * sigma if rho is None else rho
    v = sigma * sigma * n
    return math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha * alpha))) / n


def pooled_sigma(groups: list[list[float]]) -> float:
    """The spread of paired differences, pooled over groups each about its own mean (nan without df)."""
    ss = sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in groups if len(g) > 1)
    df = sum(len(g) - 1 for g in groups if len(g) > 1)
    return math.sqrt(ss / df) if df else math.nan


@dataclass(frozen=True)
class Comparison:
    """One paired comparison (a - b, for mode "min" negative is better) after n seeds."""

    n: int
    mean: float
    radius: float
    decision: Decision


def compare(diffs: list[float], sigma: float, alpha: float, mode: str, min_seeds: int = 2) -> Comparison:
    """Decide a - b from the paired differences so far: "better" when the confidence sequence lies
    wholly on the better side of 0, "worse" on the other, else "undecided"."""
    n = len(diffs)
    mean = sum(diffs) / n if n else math.nan
    radius = cs_radius(n, sigma, alpha) if n >= min_seeds and math.isfinite(sigma) else math.inf
    signed = mean if mode == "min" else -mean
    decision: Decision = "better" if signed + radius < 0 else "worse" if signed - radius > 0 else "undecided"
    return Comparison(n, mean, radius, decision)


def race_sigma(diffs: dict[str, list[float]], base_mean: float, floor: float) -> float:
    """The sigma of the decisions: the pooled spread of the paired differences so far, at least
    `floor` times |base mean| (the declared spread, or a floor so that one lucky agreement of two
    seeds cannot decide alone); nan while neither is known."""
    s = pooled_sigma(list(diffs.values()))
    low = floor * abs(base_mean) if math.isfinite(base_mean) else math.nan
    known = [x for x in (s, low) if math.isfinite(x)]
    return max(known) if known else math.nan
