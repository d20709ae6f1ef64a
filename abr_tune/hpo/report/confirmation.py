"""The report's confirmation section: the top configurations and the base config over seeds."""

from __future__ import annotations

from typing import Any

from ...formatting import finite
from ..confirm import BASE_LABEL, verdict_of


def confirmation_blocks(summary: dict[str, Any], metric: str) -> list[tuple[str, Any]]:
    """Document blocks (kind, payload) for `summary["confirmation"]`; none when the search did not confirm."""
    confirmation = summary.get("confirmation")
    if confirmation and confirmation.get("state") in ("pending", "interrupted"):  # no verdict to show
        done = f" ({confirmation['runs_finished']} of {confirmation['runs']} runs finished)" \
            if "runs" in confirmation else ""
        return [("h2", "Confirmation over seeds"),
                ("p", f"The confirmation did not finish{done}, so it has no verdict; `best_config.yaml` is the "
                      f"search's unconfirmed pick. Continue it with `python -m abr_tune.search --resume "
                      f"{summary.get('experiment_dir', '<experiment>')}`.")]
    if not confirmation:
        return []
    seeds = ", ".join(map(str, confirmation["seeds"]))
    head = ["candidate", f"{metric} mean ± 95% CI", "search (1 seed)", "vs base (paired, 95% CI)", "p", "verdict"]
    rows = [_row(r) for r in confirmation["rows"]]
    return [("h2", "Confirmation over seeds"),
            ("p", f"The top {confirmation['top_k']} configurations and the base config, trained again at seeds "
                  f"{seeds} for {summary.get('max_epochs')} epochs (data, split and validation draw fixed), "
                  "compared with the base config paired by seed. **" + confirmation["verdict"] + "**"),
            ("table", (head, rows)), *_race_blocks(confirmation)]


def _race_blocks(confirmation: dict[str, Any]) -> list[tuple[str, Any]]:
    """The racing confirmation's decisions: what, after how many seeds, and why."""
    race = confirmation.get("race")
    if not race:
        return []
    notes = [f"`{r['label']}`: {r['race_note']}" for r in confirmation["rows"] if r.get("race_note")]
    return [("p", f"Raced ({race['runs']} runs instead of {race['runs_fixed']}): each paired comparison "
                  f"stopped once its anytime-valid confidence sequence (Robbins' normal mixture, alpha "
                  f"{race['alpha']}) excluded 0, a configuration decided worse than another dropped, at most "
                  f"{race['seed_cap']} seeds. " + " ".join(notes))]


def _row(r: dict[str, Any]) -> list[str]:
    ci = f" ± {r['ci95']:.4f}" if finite(r["ci95"]) else ""
    search = f"{r['search_value']:.4f}" if finite(r.get("search_value")) else "-"
    if r["label"] == BASE_LABEL:
        return [f"`{r['label']}`", f"{r['mean']:.4f}{ci}", search, "-", "-", "the reference"]
    half = f" ± {r['diff_ci95']:.4f}" if finite(r.get("diff_ci95")) else ""
    p = f"{r['p_value']:.3g}" if finite(r.get("p_value")) else "-"
    verdict = verdict_of(r["beats_base"], r.get("worse_than_base", False))
    return [f"`{r['label']}`", f"{r['mean']:.4f}{ci}", search, f"{r['diff_mean']:+.4f}{half}", p, verdict]
