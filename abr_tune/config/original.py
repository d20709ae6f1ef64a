"""The original pipeline's train config read as it was written.

Every key of that file is honoured where it means something here: read under abr-tune's name
(RENAMED, the three split ratios, the plot cap), or already abr-tune's own key. The rest are
accepted and named once, with why, in the notice `config_from_raw` prints: keys for parts
abr-tune does not have (NO_EFFECT), switches for what it always does (ALWAYS: true accepted,
false refused with the reason) and switches for what it never does (NEVER: the reverse). Any
other key stays unknown, so typos are still caught. The recorded config holds abr-tune's keys
only: it is what ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .names import canonical_static, role_of
from .schema import VizConfig

RENAMED = {
    "data.train_csv": "data.path",
    "trainer.num_sample_plots": "viz.num_samples",
    "trainer.num_val_plots": "viz.num_reference_plots",
}
_NO_WORKERS = "the dataset is held on the training device and batches are slices of it: there are no loader workers"
_PINNED = "the dataset is copied to the training device once: there is nothing to pin"
NO_EFFECT = {
    "loader.num_workers": _NO_WORKERS,
    "loader.pin_memory": _PINNED,
    "loader.prefetch_factor": _NO_WORKERS,
    "loader.persistent_workers": _NO_WORKERS,
    "performance.pin_memory": _PINNED,
    "performance.non_blocking": "batches are slices of tensors already on the device: no host-to-device copies",
    "performance.find_unused_parameters": "an option of multi-GPU (DistributedDataParallel) training, which "
                                          "abr-tune does not do",
    "viz.audio_sample_rate": "abr-tune writes no audio; the recordings' sampling rate is data.sample_rate_hz",
    "advanced.grad_norm_clip": "optim.grad_clip is the clipping norm (the original pipeline did not read this key "
                               "either)",
    "advanced.log_param_norm": "no parameter-norm scalar is logged; logging.log_parameter_histograms shows the weights",
    "logging.console_log_level": "abr-tune prints its progress and notices itself; trainer.progress: false silences "
                                 "the per-epoch lines",
    "logging.save_model_summary": "no model summary file is written; config.yaml's model section defines the model",
}
_GRAD_NORM = "train/grad_norm is logged every trainer.log_every_steps steps"
ALWAYS = {  # switches for what abr-tune always does: true has no effect, false is refused
    "model.use_timestep_cond": "the denoiser is always conditioned on the diffusion timestep",
    "model.use_static_film": "the four conditions always modulate every block by FiLM",
    "diffusion.v_prediction": "the model always predicts v (Salimans & Ho 2022), which the DDIM sampler and "
                              "val/mse_v assume",
    "advanced.log_grad_norm": _GRAD_NORM,
    "logging.log_gradient_norm": _GRAD_NORM,
    "logging.log_loss_components": "train/loss_total, train/loss_main_mse_v and train/loss_stft are always logged",
    "logging.log_learning_rate": "train/lr is always logged",
    "logging.save_config_with_checkpoint": "every checkpoint and the run's config.yaml always hold the config",
}
NEVER = {  # switches for what abr-tune never does: false has no effect, true is refused
    "viz.plot_audio": "a 10 ms ABR is a click too short to listen to, so abr-tune writes no audio",
    "performance.gradient_checkpointing": "activations are never recomputed (the 200-sample model fits in memory); "
                                          "lower loader.batch_size if memory is short",
    "performance.distributed": "abr-tune trains one model on one device; a search runs trials in parallel",
}
RATIOS = ("data.train_ratio", "data.val_ratio", "data.test_ratio")
SPECIAL = (*RATIOS, "data.val_csv", "viz.max_waveform_plots")
ORIGINAL_KEYS = (*RENAMED, *NO_EFFECT, *ALWAYS, *NEVER, *SPECIAL)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FOREIGN_SECTIONS = ("performance",)  # sections of the original with no counterpart here


@dataclass
class Translation:
    """The config in abr-tune's keys, what was read as what, what has no effect (and why), what is refused."""

    raw: dict[str, Any]
    read_as: list[str] = field(default_factory=list)
    no_effect: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # dotted keys of the foreign sections that nothing knows


def translate(raw: dict[str, Any]) -> Translation:
    """`raw` with the original pipeline's keys turned into abr-tune's (sections copied, never changed in place)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    t = Translation(out)
    given = {key: _pop(out, key) for key in ORIGINAL_KEYS if _has(out, key)}
    for key, value in given.items():
        if key in RENAMED:
            _rename(t, key, RENAMED[key], value)
        elif key in NO_EFFECT:
            t.no_effect.append(f"{key}: {NO_EFFECT[key]}")
        elif key in ALWAYS or key in NEVER:
            _switch(t, key, value)
    if "data.train_csv" in given and given["data.train_csv"] not in (None, ""):
        _file_source(t)
    _ratios(t, {k: given[k] for k in RATIOS if k in given})
    if "data.val_csv" in given:
        _val_csv(t, given["data.val_csv"], given.get("data.train_csv"))
    if "viz.max_waveform_plots" in given:
        _cap_plots(t, given["viz.max_waveform_plots"])
    if "logging.console_log_level" in given and str(given["logging.console_log_level"]).upper() not in LOG_LEVELS:
        t.problems.append(f"config key 'logging.console_log_level' is {given['logging.console_log_level']!r}; "
                          f"allowed values: {', '.join(LOG_LEVELS)}")
    _canonical_names(t)
    for section in FOREIGN_SECTIONS:
        leftover = out.pop(section, None)
        if isinstance(leftover, dict):
            t.unknown += [f"{section}.{k}" for k in leftover]
        elif leftover is not None:
            t.problems.append(f"config key '{section}' must be a mapping of its sub-keys, got {leftover!r}")
    return t


def notice_lines(t: Translation, source: str | None = None) -> tuple[str, list[str]] | None:
    """The one notice about the original keys: (header, lines), or None when there were none."""
    if not t.no_effect and not t.read_as:
        return None
    lines = list(t.no_effect)
    if t.read_as:
        lines.append("read as abr-tune keys (config.yaml records these): " + "; ".join(t.read_as))
    where = f" in {source}" if source else ""
    header = (f"{len(t.no_effect)} key(s) of the original pipeline's config{where} have no effect here"
              if t.no_effect else f"keys of the original pipeline's config{where} are read under abr-tune's names")
    return header + ":", lines


# ---------------------------------------------------------------- one kind of key each

def _rename(t: Translation, key: str, target: str, value: Any) -> None:
    if _has(t.raw, target) and _get(t.raw, target) != value:
        t.problems.append(f"config keys '{key}' and '{target}' both set {target}; keep one")
        return
    if key == "data.train_csv" and value in (None, ""):
        return  # the original's way of saying "no file"
    _set(t.raw, target, value)
    t.read_as.append(f"{key} as {target}")


def _switch(t: Translation, key: str, value: Any) -> None:
    always = key in ALWAYS
    why = ALWAYS[key] if always else NEVER[key]
    if not isinstance(value, bool):
        t.problems.append(f"config key '{key}' must be true or false, got {value!r}")
    elif value is always:
        t.no_effect.append(f"{key}: {why}")
    else:
        t.problems.append(f"config key '{key}: {str(value).lower()}' is not supported: {why}; "
                          f"remove the key or set it {str(always).lower()}")


def _file_source(t: Translation) -> None:
    data = t.raw.setdefault("data", {})
    if not isinstance(data, dict):
        return
    if data.get("source", "file") != "file":
        t.problems.append(f"data.train_csv names a data file but data.source is {data['source']!r}; "
                          "remove data.source or data.train_csv")
        return
    data["source"] = "file"


def _ratios(t: Translation, ratios: dict[str, Any]) -> None:
    if not ratios:
        return
    if _has(t.raw, "data.split"):
        t.problems.append("config keys 'data.split' and 'data.train_ratio/val_ratio/test_ratio' both set the split; "
                          "keep one")
        return
    missing = [k for k in RATIOS if k not in ratios]
    if missing:
        t.problems.append(f"{', '.join(missing)} missing: give all three of data.train_ratio, val_ratio and "
                          "test_ratio (or data.split: [train, val, test])")
        return
    values = [ratios[k] for k in RATIOS]
    bad = [k for k, v in ratios.items() if not _number(v) or v < 0]
    if bad:
        shown = ", ".join(repr(ratios[k]) for k in bad)
        t.problems.append(f"{', '.join(bad)} must be finite numbers >= 0, got {shown}")
    elif abs(sum(values) - 1.0) > 1e-6:
        t.problems.append(f"data.train_ratio + val_ratio + test_ratio must sum to 1, got {sum(values):g} ({values})")
    else:
        _set(t.raw, "data.split", [float(v) for v in values])
        t.read_as.append("data.train_ratio/val_ratio/test_ratio as data.split (patients, not recordings)")


def _val_csv(t: Translation, value: Any, train: Any) -> None:
    train = train or _get(t.raw, "data.path")
    if value in (None, "") or (isinstance(value, str) and isinstance(train, str) and Path(value) == Path(train)):
        t.no_effect.append("data.val_csv: it names the same file as data.train_csv, whose patient-level split "
                           "(data.split) is the validation set")
        return
    t.problems.append(f"data.val_csv ({value!r}) is not data.train_csv ({train!r}): abr-tune validates on a "
                      "patient-level split of one file (data.split); merge the two files into one, or remove "
                      "data.val_csv")


def _cap_plots(t: Translation, cap: Any) -> None:
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        t.problems.append(f"config key 'viz.max_waveform_plots' must be an integer >= 1, got {cap!r}")
        return
    defaults = VizConfig()
    for key in ("num_samples", "num_reference_plots"):
        current = _get(t.raw, f"viz.{key}")
        if not isinstance(current, int) or isinstance(current, bool):
            current = getattr(defaults, key) if current is None else current
        if isinstance(current, int) and current > cap:
            _set(t.raw, f"viz.{key}", cap)
    t.read_as.append(f"viz.max_waveform_plots as the cap of viz.num_samples and viz.num_reference_plots ({cap})")


def _canonical_names(t: Translation) -> None:
    """The original's static names (Age, Stimulus Rate, ...) and column roles in any spelling, as abr-tune's."""
    data = t.raw.get("data")
    if not isinstance(data, dict):
        return
    order = data.get("static_order")
    if isinstance(order, list):
        data["static_order"] = [canonical_static(n) or n if isinstance(n, str) else n for n in order]
    columns = data.get("columns")
    if isinstance(columns, dict):
        data["columns"] = {(role_of(k) or k) if isinstance(k, str) else k: v for k, v in columns.items()}


# ---------------------------------------------------------------- dotted access into the raw mapping

def _has(raw: dict[str, Any], dotted: str) -> bool:
    section, _, leaf = dotted.partition(".")
    return isinstance(raw.get(section), dict) and leaf in raw[section]


def _get(raw: dict[str, Any], dotted: str) -> Any:
    section, _, leaf = dotted.partition(".")
    return raw[section].get(leaf) if isinstance(raw.get(section), dict) else None


def _pop(raw: dict[str, Any], dotted: str) -> Any:
    section, _, leaf = dotted.partition(".")
    return raw[section].pop(leaf)


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, leaf = dotted.partition(".")
    if not isinstance(raw.setdefault(section, {}), dict):
        return  # the build reports a section that is not a mapping
    raw[section][leaf] = value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
