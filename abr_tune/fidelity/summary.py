"""The evaluation's summary: CFG scale against every metric, with the oracle row, as Markdown."""

from __future__ import annotations

import math
from typing import Any

from ..data.arrays import MICROVOLT, UNIT_LABELS
from ..data.conditions import Conditions
from ..physiology.measures import COLLAPSE_RATIO

# (key, column title, format, better): the summary's tables and metrics.json's best_cfg_scale.
AGREEMENT = (("corr", "Pearson r", ".3f", "max"), ("corr_truth", "r vs noise-free", ".3f", "max"),
             ("mse_uv", "MSE (µV²)", ".4f", "min"),
             ("spectral_distance_db", "spectral dist. (dB)", ".2f", "min"),
             ("wave_v_latency_mae_ms", "V latency MAE (ms)", ".3f", "min"),
             ("wave_v_latency_bias_ms", "V latency bias (ms)", "+.3f", None),
             ("wave_v_amplitude_error_pct", "V amplitude error (%)", ".1f", "min"),
             ("wave_v_amplitude_bias_pct", "V amplitude bias (%)", "+.1f", None),
             ("wave_v_found_frac", "V found", ".1%", "max"),
             ("wave_i_latency_mae_ms", "I latency MAE (ms)", ".3f", None),
             ("wave_iii_latency_mae_ms", "III latency MAE (ms)", ".3f", None))
PHYSIOLOGY = (("detection_acc", "detection acc.", ".1%", "max"),
              ("detection_acc_clear", "detection acc. (clear)", ".1%", "max"),
              ("detection_sensitivity", "sensitivity", ".1%", None),
              ("detection_specificity", "specificity", ".1%", None),
              ("li_slope_ms_per_db", "L–I slope (ms/dB)", "+.4f", None),
              ("li_slope_truth_ms_per_db", "truth slope (ms/dB)", "+.4f", None),
              ("li_slope_rel_error", "slope error", ".1%", "min"),
              ("rate_effect_ms_per_hz", "rate (ms per /s)", "+.4f", None),
              ("rate_effect_truth_ms_per_hz", "truth rate", "+.4f", None),
              ("infant_delay_ms", "infant delay (ms)", "+.2f", None),
              ("infant_delay_truth_ms", "truth infant", "+.2f", None),
              ("diversity_ratio", "diversity gen/real", ".2f", None),
              ("collapsed", "collapsed", "", None),
              ("c2st_acc", "C2ST acc.", ".3f", "min"),
              ("c2st_ci_high", "C2ST 95% upper", ".3f", None))
IDEAL_ROW = "ideal generator"
# Metrics shown divided by their oracle value (1 = as good as a recording).
RELATIVE = (("corr", "r"), ("corr_truth", "r vs noise-free"), ("mse_uv", "MSE"),
            ("wave_v_latency_mae_ms", "V latency MAE"), ("wave_v_amplitude_error_pct", "V amplitude error"),
            ("detection_acc", "detection"), ("detection_acc_clear", "detection (clear)"),
            ("li_slope_rel_error", "slope error"), ("c2st_acc", "C2ST acc."))


def relative_to_oracle(by_scale: dict[str, dict[str, Any]], oracle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per CFG scale, each RELATIVE metric ÷ its oracle value (None where either is missing or the oracle is 0)."""
    def ratio(value: Any, ref: Any) -> float | None:
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (value, ref))
        return value / ref if ok and ref else None

    return {scale: {k: ratio(m.get(k), oracle.get(k)) for k, _ in RELATIVE} for scale, m in by_scale.items()}


def summary_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: two tables of CFG scale vs metric with the oracle row, then definitions."""
    lines = [f"# ABR fidelity: {report['checkpoint']}", "",
             f"Epoch {report['epoch']}, {report['split']} split of {report['data']}: {report['n_conditions']} "
             f"conditions × {report['repeats']} samples, DDIM {report['sample_steps']} steps "
             f"(eta {report['ddim_eta']:g}), seed {report['seed']}. Ground truth: "
             f"{report.get('ground_truth_detail', report['ground_truth'])}. Amplitudes in {_unit_label(report)}.", "",
             *_conditions_line(report)]
    for title, columns in (("Waveform agreement and peaks", AGREEMENT), ("Physiology and diversity", PHYSIOLOGY)):
        lines += [f"## {title}", "", _table(report, columns), ""]
    lines += ["## Relative to the oracle (generated ÷ oracle; 1 = as good as a recording)", "",
              _relative_table(report), ""]
    lines += _class_tables(report)
    collapsed = [s for s, m in report["by_cfg_scale"].items() if m["collapsed"]]
    if collapsed:
        lines += [f"**Collapsed generator** at CFG {', '.join(collapsed)}: repeated samples of one condition "
                  f"spread less than {COLLAPSE_RATIO:g}× the real spread.", ""]
    lines += [_DEFINITIONS]
    return "\n".join(lines)


def _table(report: dict[str, Any], columns) -> str:
    best = report["best_cfg_scale"]
    header = "| CFG scale | " + " | ".join(title.replace("µV", _unit(report)) for _, title, _, _ in columns) + " |"
    rows = [header, "|" + "---|" * (len(columns) + 1)]
    for scale, m in report["by_cfg_scale"].items():
        rows.append(_row(scale, [cell(m[k], fmt, bold=best.get(k) == float(scale)) for k, _, fmt, _ in columns]))
    for label, m in (("oracle", report["oracle"]), (IDEAL_ROW, report.get("ideal"))):
        if m:
            rows.append(_row(label, [cell(m[k], fmt) for k, _, fmt, _ in columns]))
    return "\n".join(rows)


def _relative_table(report: dict[str, Any]) -> str:
    rows = ["| CFG scale | " + " | ".join(title for _, title in RELATIVE) + " |", "|" + "---|" * (len(RELATIVE) + 1)]
    relative = [*report.get("relative_to_oracle", {}).items(), (IDEAL_ROW, report.get("ideal_relative_to_oracle"))]
    rows += [_row(label, [cell(m.get(k), ".2f") for k, _ in RELATIVE]) for label, m in relative if m]
    return "\n".join(rows)


def _row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


# The per-class tables' columns (a file with a hearing-loss `target`).
CLASS_COLUMNS = ("corr", "mse_uv", "wave_v_latency_mae_ms", "wave_v_found_frac", "detection_acc",
                 "detection_sensitivity", "detection_specificity", "diversity_ratio")


def _class_tables(report: dict[str, Any]) -> list[str]:
    """Per CFG scale, one row per hearing-loss class (names from the file's label encoder)."""
    columns = [c for c in (*AGREEMENT, *PHYSIOLOGY) if c[0] in CLASS_COLUMNS]
    lines = []
    for scale, by_class in report.get("by_class", {}).items():
        titles = " | ".join(title.replace("µV", _unit(report)) for _, title, _, _ in columns)
        lines += [f"## By hearing-loss class, CFG {scale}", "", f"| class | conditions | {titles} |",
                  "|" + "---|" * (len(columns) + 2)]
        lines += [f"| {name} | {m['n_conditions']:.0f} | " + " | ".join(cell(m[k], fmt) for k, _, fmt, _ in columns)
                  + " |" for name, m in by_class.items()]
        lines.append("")
    return lines


def _unit(report: dict[str, Any]) -> str:
    return report.get("signal_unit", MICROVOLT)


def _conditions_line(report: dict[str, Any]) -> list[str]:
    """The conditions in the data's own units, its sample rate and window (reports written before: nothing)."""
    if "conditions" not in report:
        return []
    spec = Conditions.from_state_dict(report["conditions"])
    return [f"Conditions: {spec.summary()}. Time axis: {report['sample_rate_hz']:g} Hz from "
            f"{report['window_start_ms']:g} ms.", ""]


def _unit_label(report: dict[str, Any]) -> str:
    unit = _unit(report)
    return f"{UNIT_LABELS.get(unit, unit)}{'' if unit == MICROVOLT else ': the file holds no µV'}"


def cell(value: Any, fmt: str, bold: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = ("yes" if value else "no") if isinstance(value, bool) else format(value, fmt)
    return f"**{text}**" if bold else text


_DEFINITIONS = """## What the numbers mean

- **Pearson r, MSE**: each generated waveform against the recording of its condition, averaged.
  The recording holds residual noise the generator cannot know, so even the noise-free
  response scores only r = sqrt(1 − 1/Fmp) and MSE = the residual-noise power: the oracle row.
- **r vs noise-free** (synthetic data): each generated waveform against the simulator's noise-free
  response of its condition, over the conditions with a response. A generator that reproduces the
  response and realistic residual noise for a *new* subject scores the ideal generator row; a recording,
  sharing its subject's latency offset and amplitude scale with the truth, the oracle row.
- **spectral dist.**: RMS over 100–3000 Hz of the dB difference between the mean power spectra
  of the generated and the recorded set (0 = right spectral content).
- **V/I/III latency, amplitude**: the documented peak picker (`abr_tune/physiology/peaks.py`) on each generated
  waveform against the truth (the simulator's, or marked `v_latency_ms`/`v_amplitude_uv`, else the
  picker on the recording; waves I and III always the picker); amplitude is peak-to-following-trough,
  error in % of the truth; **found**: share of true peaks the picker finds in the generated waveform.
  The oracle row is the picker on the recordings themselves: its own accuracy.
- **detection**: a response is detected when the picker finds wave V of at least 0.04 µV; scored
  against the truth (response present or not); **clear**: only conditions whose truth is clinically
  unambiguous (no response, or a response with Fmp ≥ 3.1). The oracle row is the detector's ceiling.
- **L–I slope, rate, infant delay**: one least-squares fit of wave V latency on intensity (ms/dB),
  click rate (ms per click/s) and age < 1 year (ms), for generated and true latencies on the same
  conditions; **slope error**: |generated − truth| / |truth|.
- **diversity gen/real**: spread of repeated samples of one condition over the spread of recordings
  of different patients with the nearest condition; **collapsed** when below the threshold above.
- **C2ST** (classifier two-sample test, `abr_tune/fidelity/c2st.py`): the held-out accuracy, with its
  95% interval, of a fixed logistic regression trained to tell one generated waveform per condition
  from the recording of that condition (patient-grouped 5-fold cross-validation); 0.5 = the two
  cannot be told apart. The oracle row (synthetic data) tells recordings from fresh simulated
  recordings of the same conditions: the test's own chance level.
- **ideal generator** (synthetic data): recordings of *new* simulated subjects under each condition
  (age, intensity and rate the same, Fmp matched), scored like generated waveforms. The oracle row
  shares its subject's latency offset and amplitude scale with the truth; no generator can know
  them from the conditions, so r vs noise-free, the V latency MAE and amplitude error of a generator
  that samples the true distribution sit at this row, not at the oracle's.
- **Relative to the oracle**: each metric divided by the oracle row's value: r and detection want 1
  (higher is better up to the ceiling), errors and the C2ST accuracy want 1 from above.

Best value per column in bold. Figures: `waveforms_cfg<scale>.png`, `latency_intensity.png`,
`error_histograms.png`.
"""
