"""How much of the search's differences in its sample metrics is sampling noise.

Sample metrics (`sample/*`) score DDIM samples of a fixed, seeded set of validation conditions,
with the DDIM noise drawn from trainer.val_seed. Re-scoring the best trial's checkpoint on the
same conditions at other sampling seeds gives the sd that noise alone puts on one trial's
value; the spread of the same metric across the front's members (or the completed trials) is
read against it. Every trial sampled with the same seed, so part of that noise is shared and
cancels in their differences: the runner-up is re-scored at the same seeds too, and the best −
runner-up difference read against its own sd over seeds. Written into the report and
`report/noise.json`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from ...errors import UserError
from ...formatting import finite, fmt_value, json_safe
from ...metrics_registry import sampled
from ..confirm import BASE_LABEL
from ..layout import TUNE_CHECKPOINT_FILE, TUNE_RESULT_FILE
from ..space import SearchSpace
from .result import SearchResult
from .samples import best_checkpoint

NOISE_FILE = "noise.json"
NOISE_SEEDS = 5  # sampling seeds val_seed + 1 .. val_seed + NOISE_SEEDS
REAL_RATIO = 2.0  # spread / noise below this: within the noise (a spread of pure noise has a ratio near 1)


def sample_names(space: SearchSpace) -> list[str]:
    """The `sample/*` metrics the search optimises or constrains, in the space's order."""
    names = space.objectives + [c.metric for c in space.parsed_constraints()]
    return [n for n in dict.fromkeys(names) if sampled(n)]


def sampling_noise(result: SearchResult, out: Path, conditions: int,
                   log: Callable[[str], None]) -> tuple[Optional[dict[str, Any]], str]:
    """(the numbers, also written to out/noise.json) or (None, why not; "" when the search has no sample metric)."""
    (out / NOISE_FILE).unlink(missing_ok=True)  # no stale numbers from an earlier report
    names = sample_names(result.space)
    if not names:
        return None, ""
    best = result.best
    if conditions < 1:
        return None, "sampling skipped (--conditions 0)"
    if best is None:
        return None, "no best trial to re-score"
    checkpoint = valued_checkpoint(best)
    if checkpoint is None:
        return None, f"the best trial's checkpoint is missing ({best.get('best_checkpoint')})"
    try:
        noise = rescore(best, checkpoint, names, log)
        noise["spread"] = {n: spread(result, n, noise["metrics"][n]["sd"]) for n in names}
        noise["paired"] = paired(result, noise, names, log)
    except (UserError, OSError) as err:
        return None, f"re-scoring failed: {err}"
    noise["time_sec"] = time.perf_counter() - noise.pop("_started")
    (out / NOISE_FILE).write_text(json.dumps(json_safe(noise), indent=2) + "\n")
    log(f"wrote {NOISE_FILE} ({noise['time_sec']:.1f} s)")
    return noise, ""


def valued_checkpoint(trial: dict[str, Any]) -> Optional[Path]:
    """Tune's checkpoint of the epoch the trial is valued at (its recorded sample metrics are that epoch's),
    else the best checkpoint the samples figure uses."""
    epoch = trial.get("best_epoch")
    try:
        lines = (Path(trial["trial_dir"]) / TUNE_RESULT_FILE).read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError):
        rows = []
    for row in rows:
        name = row.get("checkpoint_dir_name")
        path = Path(trial["trial_dir"]) / str(name) / TUNE_CHECKPOINT_FILE
        if name and finite(row.get("epoch")) and int(row["epoch"]) == epoch and path.is_file():
            return path
    return best_checkpoint(trial)


def rescore(trial: dict[str, Any], checkpoint: Path, names: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    """The checkpoint's EMA sample metrics on the trial's own validation conditions at val_seed (the search's
    draw: a check that these are the conditions it scored) and at NOISE_SEEDS other sampling seeds."""
    started = time.perf_counter()
    scored = _score(trial, checkpoint, names, log)
    seeds, by_seed = scored["seeds"], scored["by_seed"]
    metrics = {name: _stats([by_seed[s].get(name) for s in seeds]) for name in by_seed[scored["val_seed"]]}
    valued = trial.get("objectives") if scored["epoch"] == trial.get("best_epoch") else None
    recorded = {n: _at_epoch(trial, n, scored["epoch"]) if (valued or {}).get(n) is None else valued[n]
                for n in names}
    return {"trial": trial["trial_id"], "checkpoint": str(checkpoint), "epoch": scored["epoch"],
            "valued_epoch": trial.get("best_epoch"), "split": "val", "conditions": len(scored["indices"]),
            "indices": scored["indices"], "val_seed": scored["val_seed"], "seeds": seeds, "searched": names,
            "metrics": metrics, "at_val_seed": by_seed[scored["val_seed"]], "recorded": recorded,
            "_started": started, "_by_seed": by_seed}


def _score(trial: dict[str, Any], checkpoint: Path, names: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from ...data import pick_reference_indices, prepare_splits
    from ...model import Generator
    from ...training.validation import SplitTensors, sample_round

    torch.set_num_threads(os.cpu_count() or 1)  # the search is over: every core samples
    gen = Generator.from_checkpoint(checkpoint, device="auto")
    cfg, t = gen.cfg, gen.cfg.trainer
    val = SplitTensors.build(prepare_splits(cfg.data).val, gen.normaliser, gen.device)
    if len(val) == 0:
        raise UserError(f"the val split is empty (data.split {cfg.data.split})")
    # The conditions train_abr samples on: the same count, the same val_seed draw.
    idx = pick_reference_indices(val.arrays, max(cfg.viz.num_samples, cfg.viz.num_reference_plots,
                                                 t.sample_conditions), t.val_seed)
    seeds = [t.val_seed + k for k in range(1, NOISE_SEEDS + 1)]
    log(f"sampling noise: re-scoring trial {trial['trial_id']}'s checkpoint (epoch {gen.epoch}, EMA) on its "
        f"{len(idx)} validation conditions at sampling seed {t.val_seed} (the search's) and {seeds[0]}..{seeds[-1]}"
        f" on {gen.device}")
    by_seed: dict[int, dict[str, float]] = {}
    for k, seed in enumerate([t.val_seed, *seeds], 1):
        t0 = time.perf_counter()
        by_seed[seed], _ = sample_round(gen.model, gen.schedule, val, idx, cfg, gen.normaliser, gen.autocast,
                                        seed=seed)
        shown = ", ".join(f"{n} {fmt_value(by_seed[seed].get(n))}" for n in names)
        log(f"sampling noise: {trial['trial_id']} seed {seed} ({k} of {len(seeds) + 1}): {shown} "
            f"({time.perf_counter() - t0:.1f} s)")
    return {"epoch": gen.epoch, "indices": [int(i) for i in idx], "val_seed": t.val_seed, "seeds": seeds,
            "by_seed": by_seed}


def paired(result: SearchResult, noise: dict[str, Any], names: list[str],
           log: Callable[[str], None]) -> Optional[dict[str, Any]]:
    """The runner-up re-scored at the same seeds: the best − runner-up difference of each metric at val_seed
    (what the search compared) against the sd of that difference over the other seeds."""
    by_seed = noise.pop("_by_seed")
    runner = runner_up(result, noise["trial"])
    checkpoint = valued_checkpoint(runner) if runner else None
    if checkpoint is None:
        return None
    other = _score(runner, checkpoint, names, log)
    if other["indices"] != noise["indices"] or other["val_seed"] != noise["val_seed"]:
        return {"trial": runner["trial_id"], "skipped": "scored on other validation conditions (data searched)"}
    metrics = {}
    for name in names:
        diff = {s: _minus(by_seed[s].get(name), other["by_seed"][s].get(name)) for s in by_seed}
        stats = _stats([diff[s] for s in noise["seeds"]])
        d0 = diff[noise["val_seed"]]
        same = sum(finite(v) and finite(d0) and v * d0 > 0 for v in stats["values"])
        metrics[name] = {**stats, "at_val_seed": d0, "same_sign": same, "reading": _paired_reading(name, d0, stats,
                                                                                                  same)}
    return {"trial": runner["trial_id"], "epoch": other["epoch"], "metrics": metrics}


def runner_up(result: SearchResult, best_id: str) -> Optional[dict[str, Any]]:
    """The front member after the best, else the next completed trial in the ranked order."""
    pareto = result.summary.get("pareto") or {}
    by_id = {t["trial_id"]: t for t in result.trials}
    if result.reference is not None:
        by_id.setdefault(BASE_LABEL, result.reference)  # a confirmed front names the base config so
    order = [*pareto.get("front", []), *(t["trial_id"] for t in _completed(result))]
    return next((by_id[x] for x in order if x in by_id and by_id[x]["trial_id"] != best_id), None)


def spread(result: SearchResult, name: str, noise_sd: Optional[float]) -> dict[str, Any]:
    """`name` across the front's members (two or more), else across the completed trials, against the noise."""
    pareto = result.summary.get("pareto") or {}
    members = [r for r in pareto.get("rows", []) if r["label"] in pareto.get("front", [])]
    if len(members) > 1:
        across, labels = "front members", [r["label"] for r in members]
        values = [r["values"].get(name) for r in members]
        # A confirmed point is a mean over k seeds' runs: its sampling noise is sd / sqrt(k).
        per_point = min((r.get("seeds") or 1) for r in members) if pareto.get("source") == "confirmed" else 1
    else:
        done = _completed(result)
        across, labels, per_point = "completed trials", [t["trial_id"] for t in done], 1
        values = [(t.get("objectives") or {}).get(name, _at_epoch(t, name, t.get("best_epoch"))) for t in done]
    ok = [v for v in values if finite(v)]
    sd = statistics.stdev(ok) if len(ok) > 1 else None
    noise = noise_sd / math.sqrt(per_point) if finite(noise_sd) else None
    ratio = sd / noise if finite(sd) and finite(noise) and noise > 0 else None
    return {"across": across, "labels": labels, "values": values, "n": len(ok), "sd": sd,
            "range": max(ok) - min(ok) if ok else None, "noise_sd_per_point": noise, "seeds_per_point": per_point,
            "ratio": ratio, "reading": reading(name, across, sd, noise, ratio, len(ok))}


def reading(name: str, across: str, sd: Optional[float], noise: Optional[float], ratio: Optional[float],
            n: int) -> str:
    if n < 2:
        return f"fewer than two {across} measured {name}: no difference to read"
    if not finite(noise):
        return f"the re-scored {name} was not finite at every seed: no noise to compare with"
    if noise == 0:
        return (f"the sampling seed does not change {name} here; the search's differences (sd {sd:.3g}) are not "
                "sampling noise" if sd else f"{name} is the same for all {across} and every seed")
    if ratio < REAL_RATIO:
        return (f"within the noise: the search's differences in {name} across {across} (sd {sd:.3g}) are "
                f"{ratio:.1f}× the sampling noise (sd {noise:.3g})")
    return (f"the search's differences in {name} across {across} (sd {sd:.3g}) are {ratio:.1f}× the sampling "
            f"noise (sd {noise:.3g})")


def _paired_reading(name: str, d0: Optional[float], stats: dict[str, Any], same: int) -> str:
    sd, n = stats["sd"], stats["n"]
    if not finite(d0) or not finite(sd):
        return f"{name}: no finite difference to read"
    if sd == 0:
        return f"the same difference in {name} at every seed: not sampling noise" if d0 else \
            f"no difference in {name} at any seed"
    ratio = abs(d0) / sd
    verdict = "within the noise" if ratio < REAL_RATIO else "beyond the noise"
    return (f"{verdict}: the difference in {name} ({d0:+.3g} at the search's seed) is {ratio:.1f}× its sd over "
            f"seeds ({sd:.3g}), the same sign at {same} of {n} other seeds")


def _stats(values: list[Optional[float]]) -> dict[str, Any]:
    ok = [v for v in values if finite(v)]
    return {"values": values, "n": len(ok), "mean": statistics.fmean(ok) if ok else None,
            "sd": statistics.stdev(ok) if len(ok) > 1 else None}


def _minus(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a - b if finite(a) and finite(b) else None


def _completed(result: SearchResult) -> list[dict[str, Any]]:
    """Trials that ran to max_t and scored, in the ranked order."""
    return [t for t in result.trials if not t["stopped_early"] and t.get("best_value") is not None
            and not str(t["status"]).startswith(("diverged", "error", "unfinished"))]


def _at_epoch(trial: dict[str, Any], name: str, epoch: Any) -> Optional[float]:
    return next((h.get(name) for h in trial.get("history", []) if h.get("epoch") == epoch), None)


def noise_blocks(noise: Optional[dict[str, Any]], why: str) -> list[tuple[str, Any]]:
    """The "Sampling noise" section: a table per searched sample metric, or why it was not computed."""
    if noise is None:
        return [("h2", "Sampling noise of the sample metrics"), ("skipped", _Note(why))] if why else []
    seeds = noise["seeds"]
    head = ["metric", f"re-scored mean (seeds {seeds[0]}..{seeds[-1]})", f"sd over {len(seeds)} seeds",
            f"at seed {noise['val_seed']} (search recorded)", "spread across", "sd (range) of the spread", "ratio",
            "reading"]
    rows = []
    for name in noise["searched"]:
        m, s = noise["metrics"][name], noise["spread"][name]
        rows.append([f"`{name}`", fmt_value(m["mean"]), fmt_value(m["sd"], 3),
                     f"{fmt_value(noise['at_val_seed'].get(name))} ({fmt_value(noise['recorded'].get(name))})",
                     f"{s['n']} {s['across']}" + (f" (means of {s['seeds_per_point']} runs: noise sd/√"
                                                  f"{s['seeds_per_point']})" if s["seeds_per_point"] > 1 else ""),
                     f"{fmt_value(s['sd'], 3)} ({fmt_value(s['range'], 3)})",
                     "-" if s["ratio"] is None else f"{s['ratio']:.1f}×", s["reading"]])
    blocks = [("h2", "Sampling noise of the sample metrics"),
              ("p", f"Trial `{noise['trial']}`'s checkpoint of epoch {noise['epoch']} (EMA weights) re-scored on "
                    f"the same {noise['conditions']} validation conditions the trials were scored on (val split, the "
                    f"val_seed draw), with the DDIM noise drawn from seeds {', '.join(map(str, seeds))} instead of "
                    f"{noise['val_seed']}. The sd over these seeds is the noise sampling alone puts on one trial's "
                    f"value; the ratio is the spread's sd over it (below {REAL_RATIO:g}: within the noise; pure "
                    "noise gives about 1). Training-seed noise is not in it (that is what confirmation over seeds "
                    "measures). Numbers: `noise.json`."),
              ("table", (head, rows))]
    pair = noise.get("paired")
    if pair and "metrics" in pair:
        blocks += [("p", f"All trials sampled with seed {noise['val_seed']}, so part of this noise is shared and "
                         f"cancels in their differences. Paired: the runner-up `{pair['trial']}` re-scored at the "
                         f"same seeds, `{noise['trial']}` − `{pair['trial']}` at each seed:"),
                   ("table", (["metric", f"difference at seed {noise['val_seed']}", "mean over the other seeds",
                               "sd", "reading"],
                              [[f"`{n}`", fmt_value(m["at_val_seed"]), fmt_value(m["mean"]), fmt_value(m["sd"], 3),
                                m["reading"]] for n, m in pair["metrics"].items()]))]
    elif pair:
        blocks.append(("p", f"No paired comparison with `{pair['trial']}`: {pair['skipped']}."))
    return blocks


class _Note:
    """A skipped block's payload: the document model reads its caption."""

    def __init__(self, caption: str) -> None:
        self.caption = caption
