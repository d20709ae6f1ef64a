"""The search report: what a search leaves in its experiment directory, as `<experiment>/report/`
(summary.md, a self-contained index.html and four figures; with several objectives also the
Pareto front and its figure; with sample metrics searched, their sampling noise and noise.json).
The search writes it when it ends; `python -m abr_tune.report` writes it again on demand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import matplotlib.pyplot as plt

from ...config import diff, from_dict, load_config
from ...formatting import fmt_value as _fmt
from ..layout import BEST_CONFIG_FILE, REPORT_DIR
from ..params import short_name
from ..space import SearchSpace
from . import figures
from .confirmation import confirmation_blocks
from .document import Doc, duration
from .importance import importance
from .noise import NOISE_FILE, noise_blocks, sampling_noise
from .pareto import outcome_lines, pareto_blocks
from .pareto_figure import pareto_figure
from .result import SearchResult, load_search, trial_counts
from .samples import best_trial_samples

SUMMARY_MD = "summary.md"
INDEX_HTML = "index.html"
TOP_TRIALS = 10
SAMPLE_CONDITIONS = 8  # panels of best_trial_samples.png, spread across intensities
PARETO_PNG = "pareto_front.png"


def _log(message: str) -> None:
    print(f"abr-tune: report: {message}", flush=True)


# ---------------------------------------------------------------- the figures

@dataclass
class Panel:
    """One figure of the report: `make` returns (figure, caption) or (None, why it was skipped)."""

    file: str
    title: str
    make: Callable[[], figures.Made]
    caption: str = ""
    skipped: bool = False


def panels(result: SearchResult, conditions: int, log: Callable[[str], None]) -> list[Panel]:
    best_id = (result.best or {}).get("trial_id")
    trials, space = result.trials, result.space
    return [
        Panel("learning_curves.png", "Learning curves", lambda: figures.learning_curves(trials, space, best_id)),
        Panel("params_vs_metric.png", "Searched parameters against the metric",
              lambda: figures.params_vs_metric(trials, space, best_id)),
        Panel("param_importance.png", "Parameter importance",
              lambda: importance(result.study_storage, result.study_name, space)),
        Panel("best_trial_samples.png", "Best trial's samples",
              lambda: best_trial_samples(result.best, conditions, log)),
    ] + ([Panel(PARETO_PNG, "Pareto front", lambda: pareto_figure(result.summary.get("pareto")))]
         if space.multi else [])


# ---------------------------------------------------------------- sections

def document(result: SearchResult, figures: list[Panel], noise: tuple[Optional[dict[str, Any]], str] = (None, "")
             ) -> Doc:
    s = result.summary
    doc = Doc(f"Search report: {s.get('name', result.path.name)}")
    if result.space.description:
        doc.add("p", result.space.description)
    doc.add("p", f"Experiment directory: `{result.path}`")
    doc.add("h2", "Outcome")
    doc.add("list", _outcome(result))
    doc.add("h2", "Search settings")
    doc.add("table", (["setting", "value"], _settings(result)))
    doc.add("h3", "Search space")
    doc.add("table", (["parameter", "distribution", "range or values", "sampled when"], _space_rows(result.space)))
    doc.add("h2", f"Top trials (of {len(result.trials)})")
    doc.add("table", _top_table(result))
    for block in confirmation_blocks(result.summary, result.space.metric):
        doc.add(*block)
    front = next((p for p in figures if p.file == PARETO_PNG), None)
    for block in pareto_blocks(s, result.space, front) if front else []:
        doc.add(*block)
    for block in noise_blocks(*noise):
        doc.add(*block)
    _best_config_section(doc, result)
    doc.add("h2", "Figures")
    for panel in (p for p in figures if p is not front):
        doc.add("h3", panel.title)
        doc.add("skipped" if panel.skipped else "figure", panel)
    return doc


def _outcome(result: SearchResult) -> list[str]:
    s, metric, best, ref = result.summary, result.space.metric, result.best, result.reference
    c = trial_counts(result.trials)
    multi = outcome_lines(s, result.space, best) if result.space.multi and not s.get("interrupted") else []
    nothing_met = bool(multi) and (s.get("pareto") or {}).get("chosen") is None  # said first, plainly
    lines = list(multi) if nothing_met else []
    if best is not None:
        line = (f"**Best trial `{best['trial_id']}`**: {metric} = {_fmt(best['best_value'])} at epoch "
                f"{best['best_epoch']} of {result.space.scheduler.max_t}")
        if ref is not None and ref["best_value"] is not None and ref["trial_id"] != best["trial_id"]:
            change = 100 * (best["best_value"] - ref["best_value"]) / ref["best_value"]
            line += f"; the base config (trial `{ref['trial_id']}`) scored {_fmt(ref['best_value'])} ({change:+.1f}%)"
        elif ref is not None and ref["trial_id"] == best["trial_id"]:
            line += ": the base config itself; no searched values beat it"
        if result.space.constraints and not result.space.multi:
            line += f"; meets the constraints {', '.join(f'`{c}`' for c in result.space.constraints)}"
        lines += [line, *([] if nothing_met else multi)]
        if (s.get("confirmation") or {}).get("verdict"):
            lines.append(f"{s['confirmation']['verdict']} (seeds {', '.join(map(str, s['confirmation']['seeds']))})")
    elif s.get("interrupted"):
        lines.append("No best trial yet: the search was interrupted before every trial finished.")
    elif result.space.constraints and any(t.get("feasible") is False and t["best_value"] is not None
                                          for t in result.trials) and not nothing_met:
        lines.append(f"No best trial: no trial meets the constraints "
                     f"{', '.join(f'`{c}`' for c in result.space.constraints)}.")
    elif not nothing_met:
        lines.append(f"No best trial: no trial finished with a finite {metric}.")
    lines.append(f"Trials: {c['run']} run of {result.num_samples}: {c['completed']} ran to max_t, "
                 f"{c['stopped']} stopped early by ASHA, {c['diverged']} diverged, {c['failed']} failed"
                 + (f", {c['unfinished']} unfinished" if c["unfinished"] else ""))
    compute = sum(h.get("epoch/time_sec") or 0.0 for t in result.trials for h in t["history"])
    lines.append(f"Wall time: {duration(s.get('wall_time_sec', 0.0))}"
                 + (" (of the last, resumed, session)" if s.get("resumed") else "")
                 + f"; trials' epochs added up: {duration(compute)}")
    if s.get("interrupted"):
        lines.append(f"The search was interrupted; continue it with `python -m abr_tune.search --resume {result.path}`")
    return lines


def _settings(result: SearchResult) -> list[list[str]]:
    sp, s = result.space, result.space.scheduler
    rungs = figures.asha_rungs(s.max_t, s.grace_period, s.reduction_factor)
    search = sp.search
    points = ", ".join(p if isinstance(p, str) else json.dumps(p) for p in search.points_to_evaluate) or "none"
    study = result.summary.get("study") or {}
    return [
        ["objectives (primary first)", ", ".join(f"`{n}` ({m})" for n, m in zip(sp.objectives, sp.modes, strict=True))
         + (f"; constraints {', '.join(f'`{c}`' for c in sp.constraints)}" if sp.constraints else "")]
        if sp.multi else ["metric", f"`{sp.metric}` ({sp.mode})"
                          + (f"; constraints {', '.join(f'`{c}`' for c in sp.constraints)} (the best must meet them)"
                             if sp.constraints else "")],
        ["trials (num_samples)", f"{sp.num_samples}, at most {sp.max_concurrent} at once"
         + "".join(f"; {e['num_samples']} more in `{Path(e['dir']).name}/` (--extend)"
                   for e in result.summary.get("extensions") or [])],
        ["searcher", f"Optuna {search.sampler.upper() if search.sampler == 'tpe' else search.sampler}, seed "
                     f"{search.seed}, {search.n_startup_trials} random start-up trials; points to evaluate: {points}"],
        ["scheduler", f"ASHA on epochs: max_t {s.max_t}, grace_period {s.grace_period}, reduction_factor "
                      f"{s.reduction_factor:g} (rungs at epoch {', '.join(map(str, rungs))})"],
        ["resources per trial", f"{sp.resources.cpus_per_trial:g} CPU, {sp.resources.gpus_per_trial:g} GPU"],
        ["Optuna study", f"`{result.study_storage}` (study `{study.get('study_name', '-')}`)"],
    ]


def _space_rows(space: SearchSpace) -> list[list[str]]:
    rows = []
    for p in space.params:
        if p.dist == "choice":
            span = ", ".join(str(v) for v in p.labels())
        else:
            span = f"[{p.low:g}, {p.high:g}]" + (f", step {p.q:g}" if p.q else "")
        rows.append([f"`{p.name}`", p.dist, span, str(p.when) if p.when else "always"])
    return rows


def _top_table(result: SearchResult) -> tuple[list[str], list[list[str]]]:
    names = [p.name for p in result.space.params]
    more = result.space.objectives[1:]  # several objectives: each at the epoch the trial is valued at
    head = ["#", "trial", *[short_name(n) for n in names], f"best {result.space.metric}", *more,
            "valued at epoch" if more else "at epoch", "epochs", "status"]
    rows = []
    for i, t in enumerate(result.trials[:TOP_TRIALS], 1):
        trial = f"`{t['trial_id']}`" + (" (base)" if t.get("is_reference") else "")
        rows.append([str(i), trial, *[_fmt(t["params"].get(n)) for n in names], _fmt(t["best_value"]),
                     *[_fmt((t.get("objectives") or {}).get(m)) for m in more],
                     _fmt(t["best_epoch"]), str(t["epochs_run"]),
                     str(t["status"]) + ("; misses a constraint" if t.get("feasible") is False else "")])
    return head, rows


def _best_config_section(doc: Doc, result: SearchResult) -> None:
    doc.add("h2", "Best config against the base config")
    best_file = result.path / BEST_CONFIG_FILE
    if result.best is None or not best_file.is_file():
        doc.add("p", f"No `{BEST_CONFIG_FILE}`: the search has no best trial.")
        return
    searched = set((result.summary.get("best") or {}).get("overrides") or {})
    changes = diff(load_config(best_file), from_dict(result.space.base))
    rows = [[f"`{k}`", _fmt(base), _fmt(new), "searched" if k in searched else "set for re-training"]
            for k, (base, new) in sorted(changes.items(), key=lambda kv: (kv[0] not in searched, kv[0]))]
    doc.add("table", (["key", "base", "best", "why"], rows))
    doc.add("p", f"`{best_file}` is a complete train config, for the length the search measured. Re-train it "
                 "and test it (`--max-epochs N` trains longer, the LR schedule then over N epochs):")
    doc.add("code", f"python -m abr_tune.retrain --experiment {result.path}")
    doc.add("p", "or train it yourself, and explore the search further:")
    doc.add("code", f"python -m abr_tune.train --config {best_file}\ntensorboard --logdir {result.path}\n"
                    f"optuna-dashboard {result.study_storage}")


# ---------------------------------------------------------------- entry points

def write_report(experiment_dir: str | Path, *, conditions: int = SAMPLE_CONDITIONS,
                 log: Callable[[str], None] = _log) -> Path:
    """Write `<experiment>/report/` (summary.md, index.html, figures, noise.json when sample metrics
    were searched); returns the report directory.

    Raises UserError when `experiment_dir` is not a finished search. A figure that cannot be
    made (too few trials for importance, no checkpoint to sample) is skipped with a note.
    """
    started = time.perf_counter()
    result = load_search(experiment_dir)
    out = result.path / REPORT_DIR
    out.mkdir(exist_ok=True)
    figures = panels(result, conditions, log)
    for panel in figures:
        t0 = time.perf_counter()
        fig, panel.caption = panel.make()
        panel.skipped = fig is None
        if fig is None:
            (out / panel.file).unlink(missing_ok=True)  # no stale figure from an earlier report
            log(f"skipped {panel.file}: {panel.caption.replace('`', '')}")
            continue
        fig.savefig(out / panel.file, dpi=110)
        plt.close(fig)
        log(f"wrote {panel.file} ({time.perf_counter() - t0:.1f} s)")
    noise = sampling_noise(result, out, conditions, log)
    if noise[1]:
        log(f"skipped {NOISE_FILE}: {noise[1]}")
    doc = document(result, figures, noise)
    (out / SUMMARY_MD).write_text(doc.markdown())
    (out / INDEX_HTML).write_text(doc.html(out))
    log(f"{out / INDEX_HTML} and {SUMMARY_MD} written in {time.perf_counter() - started:.1f} s")
    return out
