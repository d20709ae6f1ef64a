"""Fidelity on held-out real recordings: a generated set against the recordings of subjects the model never saw.

The generated set has one waveform per held-out recording, generated for that recording's conditions, so
the two sets share every row's conditions and differ only in where the waveform came from. Each metric has
an oracle beside it where one exists: the same measure with the real training recordings in the generated
set's place, i.e. what a generator that reproduced its training recordings exactly would score.

- `c2st`: the fixed classifier two-sample test of `abr_tune.fidelity.c2st` (the one `evaluate` uses),
  conditions given as they are with categories one-hot.
- `median_waveform_r`: per condition (every numeric and categorical condition equal), the Pearson r of the
  two sets' median waveforms (a median: a few artifacts do not decide it), averaged over the conditions
  where most held-out subjects respond. Below threshold a median is noise and r scatters around 0. The
  generated median estimates the generator's own median at that condition, so it may pool more draws per
  held-out row than one (`extra_draws`): with one draw it carries the sampling noise of as few waveforms as
  the condition has held-out records (often 1-3), which lowers r for a generator that is right on average.
- `level_slopes`: the primary wave's latency-level slope (ms/dB) and amplitude growth (µV/dB), fitted on
  the per-condition medians of the picker's latency and peak-to-trough within each group of conditions that
  differ only in level (one intercept per group), over the responding conditions. The generated medians pool
  the extra draws, as above: one draw's median latency at a condition is the picker's latency on 1-3
  generated records, and a mouse's slope (about -0.002 ms/dB, two samples over the responding levels) is
  lost in it. The oracle ratios (training mice's slopes over the held-out mice's) say how closely two real
  groups of mice agree on these slopes.
- `threshold_error_db`: per group, the lowest level from which at least half of the generated waveforms
  show a response at every higher level, against the median threshold of the group's held-out subjects.
  Extra draws join the generated waveforms here too (each draw its own series): one draw's half of a group
  is a few waveforms, and the level where it crosses moves by 10-20 dB from draw to draw.
  Both sets are detected the same way, by level-series agreement (`physiology.detection`): a generated
  waveform is placed in the series of the held-out recording it was generated for. A threshold above the
  top level (no response anywhere) counts as the top level plus one level step. Its oracle judges the
  training subjects' records the same way: with a few subjects per group on each side, two real groups
  differ by more than a level step too (benchmarks/README.md, "Real recordings").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..physiology.detection import keyed_series_truth, thresholds
from ..physiology.peaks import pick_primary
from ..physiology.profiles import Profile
from .c2st import c2st
from .metrics import pearson_r


@dataclass(frozen=True)
class Recordings:
    """(N, T) µV waveforms with their conditions: (N, K) numeric (`level_column` is the level in dB), (N, C)
    categories or None, (N,) subjects."""

    signals: np.ndarray
    static: np.ndarray
    labels: np.ndarray | None
    patient_id: np.ndarray
    level_column: int

    @property
    def levels(self) -> np.ndarray:
        return np.asarray(self.static[:, self.level_column], dtype=np.float64)

    def keys(self, with_level: bool = True) -> np.ndarray:
        """One string per row naming its conditions (all of them, or all but the level: its group)."""
        columns = [j for j in range(self.static.shape[1]) if with_level or j != self.level_column]
        parts = [np.char.mod("%.6g", np.asarray(self.static[:, j], dtype=np.float64)) for j in columns]
        if self.labels is not None:
            parts += [np.asarray(self.labels[:, j]).astype(str) for j in range(self.labels.shape[1])]
        out = np.full(len(self.signals), "", dtype=object)
        for p in parts:
            out = out + "|" + p.astype(object)
        return out.astype(str)

    def series(self) -> np.ndarray:
        """A subject's level series: its rows sharing every condition but the level."""
        return np.char.add(np.char.add(np.asarray(self.patient_id).astype(str), "#"), self.keys(with_level=False))

    def subset(self, idx: np.ndarray) -> Recordings:
        return replace(self, signals=self.signals[idx], static=self.static[idx],
                       labels=None if self.labels is None else self.labels[idx], patient_id=self.patient_id[idx])

    def with_signals(self, signals: np.ndarray) -> Recordings:
        """The same rows (conditions, subjects) with other waveforms: a generated set."""
        return replace(self, signals=np.asarray(signals))

    def tiled(self, draws: np.ndarray) -> Recordings:
        """The rows repeated once per draw with (D, N, T) waveforms `draws` of them: D generated sets at once,
        each draw's rows a subject of their own (`<subject>~<draw>`), so that no series spans two draws."""
        d, pid = len(draws), np.asarray(self.patient_id).astype(str)
        return replace(self, signals=np.asarray(draws).reshape(-1, self.signals.shape[1]),
                       static=np.tile(self.static, (d, 1)),
                       labels=None if self.labels is None else np.tile(self.labels, (d, 1)),
                       patient_id=np.concatenate([np.char.add(pid, f"~{k}") for k in range(d)]))


def detected(rec: Recordings, sample_rate_hz: float, profile: Profile) -> np.ndarray:
    """Per row: a response by agreement with the next level of its series; alone in its series, the single-trace
    detector (`physiology.detection.keyed_series_truth`)."""
    return keyed_series_truth(rec.signals, rec.levels, rec.series(), sample_rate_hz, profile)


def responding_conditions(real: Recordings, sample_rate_hz: float, profile: Profile) -> np.ndarray:
    """The condition keys at which more than half of the subjects recorded there respond (a subject responds
    at a condition when at least half of its records there are detected)."""
    keys, hit, subjects = real.keys(), detected(real, sample_rate_hz, profile), np.asarray(real.patient_id)
    out = []
    for key in np.unique(keys):
        rows = keys == key
        per_subject = [hit[rows & (subjects == s)].mean() >= 0.5 for s in np.unique(subjects[rows])]
        if np.mean(per_subject) > 0.5:
            out.append(key)
    return np.array(out, dtype=str)


def median_waveform_r(a: Recordings, b: Recordings, conditions: np.ndarray) -> tuple[float, int]:
    """Mean Pearson r of the two sets' per-condition median waveforms over `conditions` both sets hold, and
    how many they were (NaN, 0 when none)."""
    ka, kb = a.keys(), b.keys()
    shared = [k for k in conditions if (ka == k).any() and (kb == k).any()]
    if not shared:
        return float("nan"), 0
    ma = np.stack([np.median(a.signals[ka == k], axis=0) for k in shared])
    mb = np.stack([np.median(b.signals[kb == k], axis=0) for k in shared])
    return float(pearson_r(ma, mb).mean()), len(shared)


def level_slopes(rec: Recordings, conditions: np.ndarray, sample_rate_hz: float,
                 profile: Profile) -> dict[str, float]:
    """The primary wave's latency slope (ms/dB) and amplitude growth (µV/dB) over `conditions` (module
    docstring): per-condition medians of what the picker finds, one intercept per group."""
    latency, amplitude = pick_primary(rec.signals, sample_rate_hz, profile)
    keys, groups = rec.keys(), rec.keys(with_level=False)
    rows = []
    for key in conditions:
        at = keys == key
        if at.any() and np.isfinite(latency[at]).any():
            rows.append((groups[at][0], rec.levels[at][0], np.nanmedian(latency[at]), np.nanmedian(amplitude[at])))
    if not rows:
        return {"latency_slope_ms_per_db": float("nan"), "amplitude_growth_uv_per_db": float("nan")}
    group, level, lat, amp = (np.array(c) for c in zip(*rows, strict=True))
    return {"latency_slope_ms_per_db": within_group_slope(level, lat.astype(float), group),
            "amplitude_growth_uv_per_db": within_group_slope(level, amp.astype(float), group)}


def within_group_slope(x: np.ndarray, y: np.ndarray, group: np.ndarray) -> float:
    """Least-squares slope of y on x with one intercept per group (the fixed-effects estimator); NaN when no
    group has two distinct x."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = np.empty_like(x), np.empty_like(y)
    for g in np.unique(group):
        at = group == g
        dx[at], dy[at] = x[at] - x[at].mean(), y[at] - y[at].mean()
    sxx = float((dx * dx).sum())
    return float((dx * dy).sum() / sxx) if sxx > 0 else float("nan")


def group_thresholds(rec: Recordings, hit: np.ndarray, by_subject: bool) -> dict[str, float]:
    """{group: threshold dB}: the median of its subjects' thresholds (`by_subject`), or the level from which at
    least half of the group's rows respond at every higher level. No threshold: +inf."""
    groups = rec.keys(with_level=False)
    if not by_subject:
        return {g: _inf(t) for g, t in thresholds(rec.levels, groups, hit).items()}
    per_series = thresholds(rec.levels, rec.series(), hit)
    series_group = dict(zip(rec.series(), groups, strict=True))
    out: dict[str, list[float]] = {}
    for s, t in per_series.items():
        out.setdefault(series_group[s], []).append(_inf(t))
    return {g: float(np.median(v)) for g, v in out.items()}


def threshold_error_db(generated: Recordings, real: Recordings, sample_rate_hz: float,
                       profile: Profile) -> tuple[float, int]:
    """Mean |generated - real| group threshold (dB) over the groups whose median held-out subject has a
    threshold, and how many; a generated group without one counts as the top level plus one level step."""
    real_t = group_thresholds(real, detected(real, sample_rate_hz, profile), by_subject=True)
    gen_t = group_thresholds(generated, detected(generated, sample_rate_hz, profile), by_subject=False)
    levels = np.unique(real.levels)
    above = levels.max() + (np.diff(levels).min() if len(levels) > 1 else 0.0)
    errors = [abs(min(gen_t[g], above) - t) for g, t in real_t.items() if np.isfinite(t)]
    return (float(np.mean(errors)), len(errors)) if errors else (float("nan"), 0)


def c2st_accuracy(a: Recordings, b: Recordings, sample_rate_hz: float, seed: int = 0) -> float:
    """The fixed classifier's held-out accuracy telling row-aligned sets `a` and `b` apart (0.5: it cannot);
    NaN with fewer than two subjects."""
    if len(np.unique(b.patient_id)) < 2:
        return float("nan")
    conditions = np.concatenate([b.static, _one_hot(b.labels, len(b.signals))], axis=1)
    return c2st(b.signals, a.signals, conditions, b.patient_id, sample_rate_hz, seed=seed, clinic=False)["accuracy"]


def matched_rows(source: Recordings, target: Recordings, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(source rows, target rows): for each target row with a source row of the same conditions, one such
    source row drawn at random: the training recordings aligned with the held-out ones, condition by condition."""
    rng = np.random.default_rng(seed)
    src_keys, tgt_keys = source.keys(), target.keys()
    pairs = [(rng.choice(np.flatnonzero(src_keys == k)), i) for i, k in enumerate(tgt_keys) if (src_keys == k).any()]
    if not pairs:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    s, t = (np.array(c, dtype=int) for c in zip(*pairs, strict=True))
    return s, t


def heldout_metrics(generated_uv: np.ndarray, real: Recordings, train: Recordings, sample_rate_hz: float,
                    profile: Profile, seed: int = 0, extra_draws: np.ndarray | None = None) -> dict[str, Any]:
    """Every metric of the module docstring for `generated_uv` (one row per row of `real`), with its oracle
    (`train` in the generator's place) and the counts behind it. `extra_draws` ((D, N, T), more draws for the
    same rows) join `generated_uv` in the generated medians only."""
    gen = real.with_signals(generated_uv)
    conditions = responding_conditions(real, sample_rate_hz, profile)
    r_one, n_r = median_waveform_r(gen, real, conditions)
    pooled = gen if extra_draws is None or not len(extra_draws) else \
        real.tiled(np.concatenate([np.asarray(generated_uv)[None], np.asarray(extra_draws)]))
    r, _ = median_waveform_r(pooled, real, conditions)
    r_oracle, n_r_oracle = median_waveform_r(train, real, conditions)
    src, tgt = matched_rows(train, real, seed)
    oracle_set, real_matched = train.subset(src), real.subset(tgt)
    slopes_gen, slopes_real, slopes_oracle = (level_slopes(x, conditions, sample_rate_hz, profile)
                                              for x in (pooled, real, train))
    slopes_one = level_slopes(gen, conditions, sample_rate_hz, profile) if pooled is not gen else slopes_gen
    threshold_error, n_groups = threshold_error_db(pooled, real, sample_rate_hz, profile)
    threshold_one = threshold_error_db(gen, real, sample_rate_hz, profile)[0] if pooled is not gen else threshold_error
    return {
        "c2st_acc": c2st_accuracy(gen, real, sample_rate_hz, seed),
        "c2st_acc_oracle": c2st_accuracy(oracle_set, real_matched, sample_rate_hz, seed) if len(tgt) else float("nan"),
        "mean_waveform_r": r,
        "mean_waveform_r_oracle": r_oracle,
        "latency_slope_ratio": _ratio(slopes_gen["latency_slope_ms_per_db"], slopes_real["latency_slope_ms_per_db"]),
        "amplitude_growth_ratio": _ratio(slopes_gen["amplitude_growth_uv_per_db"],
                                         slopes_real["amplitude_growth_uv_per_db"]),
        "threshold_error_db": threshold_error,
        # What two real groups of subjects give: the training subjects in the generator's place.
        "threshold_error_db_oracle": threshold_error_db(train, real, sample_rate_hz, profile)[0],
        "latency_slope_ratio_oracle": _ratio(slopes_oracle["latency_slope_ms_per_db"],
                                             slopes_real["latency_slope_ms_per_db"]),
        "amplitude_growth_ratio_oracle": _ratio(slopes_oracle["amplitude_growth_uv_per_db"],
                                                slopes_real["amplitude_growth_uv_per_db"]),
        "detail": {"n_heldout": len(real.signals), "n_heldout_subjects": int(len(np.unique(real.patient_id))),
                   "responding_conditions": int(len(conditions)), "waveform_r_conditions": n_r,
                   "waveform_r_oracle_conditions": n_r_oracle, "median_draws": len(pooled.signals) // len(real.signals),
                   "mean_waveform_r_one_draw": r_one, "threshold_error_db_one_draw": threshold_one,
                   "c2st_oracle_rows": int(len(tgt)),
                   "latency_slope_ratio_one_draw": _ratio(slopes_one["latency_slope_ms_per_db"],
                                                          slopes_real["latency_slope_ms_per_db"]),
                   "amplitude_growth_ratio_one_draw": _ratio(slopes_one["amplitude_growth_uv_per_db"],
                                                             slopes_real["amplitude_growth_uv_per_db"]),
                   "threshold_groups": n_groups, "generated": slopes_gen, "real": slopes_real,
                   "oracle": slopes_oracle},
    }


def _one_hot(labels: np.ndarray | None, n: int) -> np.ndarray:
    if labels is None:
        return np.zeros((n, 0))
    columns = [np.asarray(labels[:, j]).astype(str) for j in range(labels.shape[1])]
    return np.concatenate([(c[:, None] == np.unique(c)[None, :]).astype(np.float64) for c in columns], axis=1)


def _inf(threshold: float) -> float:
    return float(threshold) if np.isfinite(threshold) else float("inf")


def _ratio(a: float, b: float) -> float:
    return float(a / b) if np.isfinite(a) and np.isfinite(b) and b != 0 else float("nan")
