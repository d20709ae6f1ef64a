"""EPL ABR files as the `ncrar-abr` package reads them, and its `-analyzed.txt` peak marks.

An EPL file (Eaton-Peabody Laboratories) is latin-1 text: header lines (`:RUN-...`, `:SW EAR: R
SW FREQ: 16.00 # AVERAGES: 512 ... SAMPLE (µsec): 10`, `:LEVELS:10;15;...;`), then `:DATA` and
one row per time point with one column per level. The frequency is in kHz; the values are taken as
µV as stored (ncrar-abr plots them unscaled in µV). Each level is one `Record`; EPL stores no
amplifier gain (NaN) and no subject id ('').

An analysis (`NAME-16.0kHz[-ANALYZER]-analyzed.txt`, as ncrar-abr writes it) gives the threshold
and frequency, then after its `NOTE` line a tab-separated table with a `Level` column and
`P1 Latency`, `P1 Amplitude`, `N1 Latency`, ... columns (ms, µV); a negative latency means the
analyst marked no peak, read here as NaN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .recording import Record, check_plausible

MAGIC = ":RUN-"
_LEVELS = re.compile(r":LEVELS:([-0-9.;\s]+)")
_PERIOD = re.compile(r"SAMPLE \(.{1,2}sec\):\s*([0-9.]+)")
_FREQ = re.compile(r"FREQ:\s*([0-9.]+)")
_AVERAGES = re.compile(r"# AVERAGES:\s*([0-9]+)")
_MARK = re.compile(r"([PN]\d+) (Latency|Amplitude)")


def read_epl(path: str | Path) -> list[Record]:
    """One record per level of an EPL ABR file, in the file's level order, in µV."""
    path = Path(path)
    text = _read_text(path)
    if not text.startswith(MAGIC) or ":DATA" not in text:
        raise UserError(f"'{path}' is not an EPL ABR file: it must begin '{MAGIC}' and hold a ':DATA' section")
    header, body = text.split(":DATA", 1)
    levels = [float(v) for v in _field(_LEVELS, header, "LEVELS", path).strip().strip(";").split(";") if v.strip()]
    period_us = float(_field(_PERIOD, header, "SAMPLE (µsec)", path))
    frequency_hz = 1e3 * float(_field(_FREQ, header, "SW FREQ", path))
    n_averages = int(_field(_AVERAGES, header, "# AVERAGES", path))
    try:
        values = np.array(body.split(), dtype=np.float64)
    except ValueError:
        raise UserError(f"'{path}': a value in its :DATA section is not a number") from None
    if not levels or values.size == 0 or values.size % len(levels):
        raise UserError(f"'{path}' is truncated or malformed: {values.size} data values do not fill "
                        f"{len(levels)} level columns")
    signals = values.reshape(-1, len(levels)).T
    notes = re.search(r":NOTES-([^\r\n]*)", header)
    rate = check_plausible(path, "the sample rate (Hz)", 1e6 / period_us if period_us > 0 else np.nan, 100.0, 1e7)
    return [Record(signal_uv=s.copy(), sample_rate_hz=rate,
                   level_db_spl=check_plausible(path, "a level (dB)", level, -50.0, 200.0),
                   frequency_hz=check_plausible(path, "the frequency (Hz)", frequency_hz, 0.0, 1e6),
                   n_averages=n_averages, gain=float("nan"), variables={"Level": level, "Freq": frequency_hz},
                   memo=notes.group(1).strip() if notes else "")
            for s, level in zip(signals, levels, strict=True)]


@dataclass(frozen=True)
class EplMarks:
    """An analyst's peak marks for one frequency: per level, each wave's latency (ms) and amplitude (µV),
    NaN where no peak was marked."""

    frequency_hz: float
    threshold_db_spl: float  # NaN where the analyst gave none
    levels: np.ndarray  # (L,)
    latency_ms: dict[str, np.ndarray]  # {'P1': (L,), 'N1': (L,), ...}
    amplitude_uv: dict[str, np.ndarray]


def read_epl_marks(path: str | Path) -> EplMarks:
    """The marks of an ncrar-abr `-analyzed.txt` file."""
    path = Path(path)
    lines = _read_text(path).splitlines()
    threshold = re.search(r"Threshold \(dB SPL\):\s*(\S+)", lines[0]) if lines else None
    frequency = re.search(r"Frequency \(kHz\):\s*([0-9.]+)", lines[1]) if len(lines) > 1 else None
    start = next((i + 1 for i, line in enumerate(lines) if line.lstrip("# ").startswith("NOTE")), None)
    if threshold is None or frequency is None or start is None or start >= len(lines):
        raise UserError(f"'{path}' is not an ncrar-abr analysis: it needs 'Threshold (dB SPL):' and "
                        "'Frequency (kHz):' lines and a table after its NOTE line")
    columns = [c.strip() for c in lines[start].rstrip().split("\t")]  # the header row ends with a tab
    if "Level" not in columns:
        raise UserError(f"'{path}': its table has no Level column")
    try:
        table = np.array([[float(v) for v in line.split("\t")[:len(columns)]] for line in lines[start + 1:]
                          if line.strip()], dtype=np.float64).reshape(-1, len(columns))
    except ValueError:
        raise UserError(f"'{path}': a row of its table is not numbers in every column") from None
    latency, amplitude = {}, {}
    for i, name in enumerate(columns):
        match = _MARK.fullmatch(name)
        if match:
            (latency if match.group(2) == "Latency" else amplitude)[match.group(1)] = table[:, i]
    for wave, values in latency.items():  # negative latency: no peak (ncrar-abr's convention)
        missing = values < 0
        latency[wave] = np.where(missing, np.nan, values)
        if wave in amplitude:
            amplitude[wave] = np.where(missing, np.nan, amplitude[wave])
    return EplMarks(frequency_hz=1e3 * float(frequency.group(1)),
                    threshold_db_spl=float("nan") if threshold.group(1) == "None" else float(threshold.group(1)),
                    levels=table[:, columns.index("Level")], latency_ms=latency, amplitude_uv=amplitude)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="latin-1")
    except OSError as err:
        raise UserError(f"cannot read '{path}' ({err.strerror or err})") from None


def _field(pattern: re.Pattern, header: str, name: str, path: Path) -> str:
    match = pattern.search(header)
    if match is None:
        raise UserError(f"'{path}' is not a complete EPL ABR file: its header has no '{name}' field")
    return match.group(1)
