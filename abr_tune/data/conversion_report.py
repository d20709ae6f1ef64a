"""The summary `convert` prints: what was read, what was kept per stimulus and level, what was dropped."""

from __future__ import annotations

from collections import Counter

import numpy as np

from .conversion import Conversion

SHOWN = 8  # file names listed per kind of drop or mismatch before '... and N more'


def summary(result: Conversion, out: dict[str, np.ndarray]) -> list[str]:
    """Lines for the terminal, in the order a user checks them."""
    m, kept = result.manifest, result.kept
    signals, rate = out["signals"], float(out["sample_rate_hz"])
    read = sum(result.formats.values())
    lines = [f"manifest: {m.path}",
             f"files: {read} read ({', '.join(f'{n} {f}' for f, n in result.formats.items())}); "
             f"subjects: {len(set(m.subjects))} in the manifest, {len(set(out['patient_id'].tolist()))} kept",
             f"recordings kept: {len(kept)}, {signals.shape[1]} samples at {rate:.10g} Hz "
             f"({1e3 * signals.shape[1] / rate:.2f} ms)",
             "per stimulus and level (dB SPL: recordings):"]
    per: dict[str, Counter] = {}
    for k in kept:
        per.setdefault(k.record.stimulus, Counter())[k.record.level_db_spl] += 1
    for stimulus in sorted(per, key=lambda s: 0.0 if s == "click" else float(s.split()[0])):
        counts = per[stimulus]
        lines.append(f"  {stimulus}: {sum(counts.values())} ("
                     + " ".join(f"{level:g}:{n}" for level, n in sorted(counts.items(), reverse=True)) + ")")
    lines.append("conditions: " + ", ".join(_condition(out, i) for i in range(len(out["static_order"]))))
    if len(out["label_order"]):
        lines.append("labels: " + "; ".join(f"{name} ({_counts(out['labels'][:, j])})"
                                            for j, name in enumerate(out["label_order"].tolist())))
    if "species" in out:
        lines.append(f"species: {out['species']}")
    return lines + _dropped(result) + _mismatches(result)


def _condition(out: dict[str, np.ndarray], i: int) -> str:
    values, unit = out["static"][:, i], str(out["static_units"][i])
    return f"{out['static_order'][i]} ({unit or 'no unit'}) {values.min():g}–{values.max():g}"


def _counts(values: np.ndarray) -> str:
    return ", ".join(f"{v or '(empty)'}: {n}" for v, n in Counter(values.tolist()).items())


def _dropped(result: Conversion) -> list[str]:
    lines = []
    if result.empty_files:
        lines.append(f"dropped {len(result.empty_files)} file(s) holding no records: {_few(result.empty_files)}")
    if result.other_stimulus:
        lines.append(f"dropped {sum(result.other_stimulus.values())} record(s) of other stimuli (--stimulus): "
                     + ", ".join(f"{s} {n}" for s, n in result.other_stimulus.items()))
    if result.flat:
        lines.append(f"dropped {len(result.flat)} constant or all-zero record(s): {_few(result.flat)}")
    return lines or ["dropped: nothing"]


def _mismatches(result: Conversion) -> list[str]:
    if not result.subject_mismatches:
        return ["subject ids in the file headers: all match the manifest"]
    return [f"subject ids in {len(result.subject_mismatches)} file header(s) differ from the manifest "
            "(the manifest's subject is used; check the lab's records):",
            *(f"  {line}" for line in result.subject_mismatches)]


def _few(items: list[str]) -> str:
    return "; ".join(items[:SHOWN]) + (f"; ... and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
