"""From a manifest's recording files to one training file's arrays, and the summary of what was kept.

`convert` reads every file the manifest lists (format recognised by `formats`), keeps the records of
one stimulus when asked, drops constant or all-zero records with a notice, and refuses recordings
that cannot share one array (different sample rates or lengths: choose a stimulus or split the
manifest; nothing is resampled or cut silently). The manifest's subject is each recording's
patient_id; a file header naming another subject is reported in the summary, and the manifest wins.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError, notice
from .formats import read_recordings
from .manifest import Manifest
from .recording import CLICK_HZ, Record


@dataclass
class Kept:
    """One record kept for the output, traced to its manifest row and its index within its file."""

    row: int
    index: int
    record: Record


@dataclass
class Conversion:
    """What `convert` read, kept and dropped: the summary's facts, and the rows of the output."""

    manifest: Manifest
    formats: Counter = field(default_factory=Counter)
    kept: list[Kept] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)
    other_stimulus: Counter = field(default_factory=Counter)  # {stimulus: records left out by --stimulus}
    flat: list[str] = field(default_factory=list)  # 'file record n' of constant or all-zero records
    subject_mismatches: list[str] = field(default_factory=list)


def convert(manifest: Manifest, stimulus_hz: float | None) -> Conversion:
    """Read and select every record of the manifest's files; `stimulus_hz` keeps one (CLICK_HZ for click)."""
    missing = [f for f in manifest.files if not manifest.resolve(f).is_file()]
    if missing:
        raise UserError(f"{len(missing)} file(s) listed in '{manifest.path}' do not exist: "
                        f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
                        f"(paths are relative to the manifest's folder '{manifest.path.parent}')")
    result = Conversion(manifest)
    stimuli: Counter = Counter()
    for row, file in enumerate(manifest.files):
        name, records = read_recordings(manifest.resolve(file))
        result.formats[name] += 1
        if not records:
            result.empty_files.append(file)
        _check_subject(result, row, records)
        for index, record in enumerate(records):
            stimuli[record.stimulus] += 1
            _keep(result, Kept(row, index, record), stimulus_hz)
    if stimulus_hz is not None and not any(_same(k.record.frequency_hz, stimulus_hz) for k in result.kept):
        wanted = "click" if stimulus_hz == CLICK_HZ else f"{stimulus_hz:.10g} Hz"
        raise UserError(f"no recording has the stimulus {wanted} (--stimulus); the files hold: "
                        f"{', '.join(sorted(stimuli, key=_stimulus_key))}")
    if result.flat:
        notice(f"dropped {len(result.flat)} constant or all-zero record(s) (no response can be read from them):",
               result.flat)
    if not result.kept:
        raise UserError(f"no usable recording in the files of '{manifest.path}'; nothing was written")
    _check_one_shape(result)
    return result


def _keep(result: Conversion, kept: Kept, stimulus_hz: float | None) -> None:
    record = kept.record
    if stimulus_hz is not None and not _same(record.frequency_hz, stimulus_hz):
        result.other_stimulus[record.stimulus] += 1
    elif not np.isfinite(record.signal_uv).all():
        raise UserError(f"'{result.manifest.files[kept.row]}' record {kept.index} holds non-finite values; "
                        "the file is damaged: remove it from the manifest or re-export it")
    elif np.ptp(record.signal_uv) == 0:
        result.flat.append(f"{result.manifest.files[kept.row]} record {kept.index} "
                           f"({'all zero' if not record.signal_uv.any() else 'constant'})")
    else:
        result.kept.append(kept)


def _check_subject(result: Conversion, row: int, records: list[Record]) -> None:
    """A header naming another subject than the manifest, per id with the records it covers."""
    subject, where = result.manifest.subjects[row], {}
    for index, r in enumerate(records):
        if r.subject_id and r.subject_id.lower() != subject.lower():
            where.setdefault(r.subject_id, []).append(index)
    if where:
        named = ", ".join(f"{name!r} (records {i[0]}-{i[-1]} of {len(records)})" for name, i in where.items())
        result.subject_mismatches.append(f"{result.manifest.files[row]}: header names {named}, manifest {subject!r}")


def _check_one_shape(result: Conversion) -> None:
    shapes: dict[tuple[float, int], list[str]] = {}
    for k in result.kept:
        files = shapes.setdefault((k.record.sample_rate_hz, k.record.signal_uv.size), [])
        if result.manifest.files[k.row] not in files:
            files.append(result.manifest.files[k.row])
    if len(shapes) > 1:
        listed = "; ".join(f"{rate:.10g} Hz × {n} samples: {len(files)} file(s), e.g. {files[0]}"
                           for (rate, n), files in shapes.items())
        raise UserError(f"the recordings differ in sample rate or length and cannot share one array ({listed}); "
                        "keep one kind with --stimulus or split the manifest into one per recording setup")


def _same(frequency_hz: float, wanted_hz: float) -> bool:
    """The stimulus asked for: equal to a millionth (a frequency typed as the summary prints it)."""
    return abs(frequency_hz - wanted_hz) <= 1e-6 * max(wanted_hz, 1.0)


def _stimulus_key(stimulus: str) -> float:
    return CLICK_HZ if stimulus == "click" else float(stimulus.split()[0])


def arrays(result: Conversion) -> dict[str, np.ndarray]:
    """The output file's members (see `abr_tune.convert`)."""
    m, kept = result.manifest, result.kept
    static, order, units = [np.array([k.record.level_db_spl for k in kept])], ["intensity"], ["dB SPL"]
    frequencies = np.array([k.record.frequency_hz for k in kept])
    if len(set(frequencies.tolist())) > 1:
        static, order, units = [*static, frequencies], [*order, "frequency"], [*units, "Hz"]
    for name, (unit, values) in m.numeric.items():
        static, order, units = [*static, values[[k.row for k in kept]]], [*order, name], [*units, unit]
    labels = np.array([[m.labels[name][k.row] for name in m.labels] for k in kept], dtype=str).reshape(len(kept), -1)
    out = {
        "signals": np.stack([k.record.signal_uv for k in kept]).astype(np.float32),
        "sample_rate_hz": np.float64(kept[0].record.sample_rate_hz),
        "patient_id": np.array([m.subjects[k.row] for k in kept], dtype=str),
        "static": np.stack(static, axis=1).astype(np.float32),
        "static_order": np.array(order, dtype=str), "static_units": np.array(units, dtype=str),
        "labels": labels, "label_order": np.array(list(m.labels), dtype=str),
        "source_file": np.array([m.files[k.row] for k in kept], dtype=str),
        "source_record": np.array([k.index for k in kept], dtype=np.int64),
        "n_averages": np.array([k.record.n_averages for k in kept], dtype=np.int64),
    }
    if m.species is not None:
        out["species"] = np.array(m.species, dtype=str)
    return out
