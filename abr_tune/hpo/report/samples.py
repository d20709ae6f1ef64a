"""The best trial's samples: its best checkpoint's EMA DDIM samples against val-split recordings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from matplotlib.figure import Figure

from ...errors import UserError
from ...viz.waveforms import GENERATED_COLOR, REFERENCE_COLOR, waveform_grid
from ..layout import trial_best_checkpoint
from .figures import Made

SAMPLE_CHUNK = 4  # conditions per DDIM call: the progress bar's step


def best_trial_samples(best: Optional[dict[str, Any]], conditions: int, log: Callable[[str], None]) -> Made:
    """DDIM samples of the best trial's best checkpoint (EMA) against val references, or why not."""
    if conditions < 1:
        return None, "sampling skipped (--conditions 0)"
    if best is None:
        return None, "no best trial (the search was interrupted or no trial scored a finite value)"
    checkpoint = best_checkpoint(best)
    if checkpoint is None:
        return None, f"the best trial's checkpoint is missing ({best.get('best_checkpoint')})"
    try:
        return _sample_figure(best, checkpoint, conditions, log)
    except (UserError, OSError) as err:
        return None, f"sampling the best trial failed: {err}"


def best_checkpoint(trial: dict[str, Any]) -> Optional[Path]:
    """Tune's checkpoint at the best epoch, else train_abr's own _best.pt in the trial dir."""
    candidates = [trial.get("best_checkpoint"), trial_best_checkpoint(trial["trial_dir"])]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def _sample_figure(best: dict[str, Any], checkpoint: Path, conditions: int,
                   log: Callable[[str], None]) -> tuple[Figure, str]:
    import numpy as np
    from tqdm.auto import tqdm

    from ...data import pick_reference_indices, prepare_splits
    from ...model import Generator

    sampler = Generator.from_checkpoint(checkpoint, device="auto")  # this machine's GPU, whatever the trial ran on
    cfg, epoch = sampler.cfg, sampler.epoch
    val = prepare_splits(cfg.data).val
    if len(val) == 0:
        raise UserError(f"the val split is empty (data.split {cfg.data.split})")
    idx = pick_reference_indices(val, conditions, cfg.trainer.val_seed)
    level = val.column("intensity")
    if level is not None:
        idx = idx[np.argsort(level[idx], kind="stable")]  # panels by rising level
    shown = val.subset(idx)
    static, labels = shown.inputs_for(sampler.normaliser.conditions)  # in the model's order
    d = cfg.diffusion
    log(f"sampling {len(idx)} conditions with trial {best['trial_id']}'s checkpoint (epoch {epoch}, "
        f"EMA, DDIM {d.sample_steps} steps, eta {d.ddim_eta:g}, CFG {d.cfg_scale:g}) on {sampler.device}")
    generated = []
    with tqdm(total=len(idx), desc="abr-tune: report: DDIM sampling", unit="waveform", leave=False) as bar:
        for i, lo in enumerate(range(0, len(idx), SAMPLE_CHUNK)):
            chunk = slice(lo, lo + SAMPLE_CHUNK)
            generated.append(sampler.generate(static[chunk], 1, d.cfg_scale, cfg.trainer.val_seed + i,
                                              labels=None if labels is None else labels[chunk])[0])
            bar.update(len(static[chunk]))
    fig = waveform_grid([(shown.signals, "reference (val split)", REFERENCE_COLOR),
                         (np.concatenate(generated), "generated (EMA, DDIM)", GENERATED_COLOR)],
                        shown.static, cfg.data.effective_rate_hz,
                        f"Best trial {best['trial_id']}: generated vs reference ABRs across levels "
                        f"(checkpoint of epoch {epoch})", unit=val.signal_unit, titles=shown.titles(),
                        start_ms=shown.start_ms)
    caption = (f"Trial `{best['trial_id']}`'s checkpoint at epoch {epoch} (best "
               f"{best.get('best_value'):.4g}), EMA weights, DDIM with {d.sample_steps} steps, eta "
               f"{d.ddim_eta:g}, CFG scale {d.cfg_scale:g}, one sample per condition (seeded), against the val-split "
               f"recording of the same condition; panels by rising level. Checkpoint: `{checkpoint}`.")
    return fig, caption
