"""Does what was searched transfer to a full-length run?

Trials are short (ASHA's max_t epochs, with the LR schedule over max_t); a user re-trains
the winner for longer. `retrain --top K` re-trains the search's top K configurations and the
base config at full length and measures whether the ranking and the gain over the base hold:
Spearman's ρ and Kendall's τ between the search's order and the full-length order, and each
configuration's full-length change against the base config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from ..config import TrainConfig, apply_overrides, from_dict
from ..errors import notice
from ..formatting import finite, table
from .confirm import BASE_LABEL


@dataclass
class Entry:
    """One configuration of a search to re-train: label, the overrides it stands for, its search value."""

    label: str
    overrides: dict[str, Any]
    search_value: Optional[float]


def train_config(base: dict[str, Any], overrides: dict[str, Any], *, log_dir: str, exp_name: str,
                 device: str, max_epochs: Optional[int] = None, extra: Optional[dict[str, Any]] = None) -> TrainConfig:
    """A complete train config: the search's base with a trial's overrides, in its own run directory;
    `extra` (the user's --override) is applied last."""
    fixed: dict[str, Any] = {"log_dir": log_dir, "exp_name": exp_name, "device": device, "trainer.progress": True}
    if max_epochs is not None:
        fixed["trainer.max_epochs"] = max_epochs
    return from_dict(apply_overrides(base, {**overrides, **fixed, **(extra or {})}))


def top_entries(summary: dict[str, Any], k: int) -> list[Entry]:
    """The K best usable configurations (the confirmed order when the search confirmed over seeds,
    else the search's ranking), then the base config."""
    trials = {t["trial_id"]: t for t in summary.get("trials", [])}
    base_trial = next((t for t in trials.values() if t.get("is_reference")), None)
    confirmed = (summary.get("confirmation") or {}).get("rows") or []
    if confirmed and k > len(confirmed) - 1:  # the confirmed ones alone are fewer than asked for
        notice(f"the search confirmed only its top {len(confirmed) - 1} over seeds; the top {k} are taken from "
               "its ranking (one seed each)")
        confirmed = []
    if confirmed:
        order = [(r["label"], r["mean"]) for r in confirmed if r["label"] != BASE_LABEL]
    else:
        order = [(t["trial_id"], t["best_value"]) for t in summary.get("trials", [])
                 if finite(t.get("best_value")) and not str(t["status"]).startswith(("diverged", "error"))
                 and not t.get("is_reference")]
    entries = [Entry(label, trials[label]["overrides"], value) for label, value in order[:k] if label in trials]
    base_value = next((r["mean"] for r in confirmed if r["label"] == BASE_LABEL), None) if confirmed else \
        (base_trial or {}).get("best_value")
    return [*entries, Entry(BASE_LABEL, (base_trial or {}).get("overrides") or {}, base_value)]


def rank_agreement(search: list[float], full: list[float]) -> dict[str, float]:
    """Spearman's ρ and Kendall's τ between two orderings of the same configurations (nan below 3)."""
    from scipy import stats

    pairs = [(s, f) for s, f in zip(search, full, strict=True) if finite(s) and finite(f)]
    if len(pairs) < 3:
        return {"spearman_rho": math.nan, "kendall_tau": math.nan, "n": len(pairs)}
    xs, ys = zip(*pairs, strict=True)
    return {"spearman_rho": float(stats.spearmanr(xs, ys).statistic),
            "kendall_tau": float(stats.kendalltau(xs, ys).statistic), "n": len(pairs)}


def transfer_rows(entries: list[Entry], full: dict[str, float]) -> list[dict[str, Any]]:
    """Per configuration: the search value, the full-length value, and both against the base's."""
    base = next(e for e in entries if e.label == BASE_LABEL)
    rows = []
    for e in entries:
        row = {"label": e.label, "search_value": e.search_value, "full_value": full.get(e.label)}
        for key, ref in (("search_vs_base_pct", base.search_value), ("full_vs_base_pct", full.get(BASE_LABEL))):
            value = row["full_value"] if key.startswith("full") else e.search_value
            row[key] = 100 * (value - ref) / ref if finite(value) and finite(ref) and ref else None
        rows.append(row)
    return rows


def format_transfer(rows: list[dict[str, Any]], agreement: dict[str, float], metric: str, epochs: int) -> str:
    head = ["config", f"search {metric}", "vs base", f"{epochs}-epoch {metric}", "vs base"]

    def cell(v: Any, pct: bool = False) -> str:
        return "-" if v is None or not finite(v) else (f"{v:+.1f}%" if pct else f"{v:.4f}")

    body = [[r["label"], cell(r["search_value"]), cell(r["search_vs_base_pct"], True), cell(r["full_value"]),
             cell(r["full_vs_base_pct"], True)] for r in rows]
    lines = table([head, *body])
    rho, tau = agreement["spearman_rho"], agreement["kendall_tau"]
    tail = (f"Rank agreement over {agreement['n']} configurations: Spearman ρ = {rho:.2f}, Kendall τ = {tau:.2f}"
            if finite(rho) else f"Rank agreement needs 3 or more configurations (have {agreement['n']})")
    return "\n".join(["Search vs full-length re-training:", *lines, tail])
