"""One averaged recording as a lab's recording system stores it: the record type every file reader returns.

The readers (`arf`, `biosig_csv`, `epl`) each return a list of `Record`s in file order; `formats`
picks the reader for a file and `manifest` turns the records of many files into one training file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

CLICK_HZ = 0.0  # a click's stimulus frequency: 0, so clicks and tones share one numeric column


@dataclass(frozen=True)
class Record:
    """One averaged response. `frequency_hz` is CLICK_HZ (0) for a click; `gain` is NaN where the format
    does not store it; `variables` are the stimulus variables as the file names them ({'Level': 90.0, ...})."""

    signal_uv: np.ndarray  # (T,) float64, µV
    sample_rate_hz: float
    level_db_spl: float
    frequency_hz: float
    n_averages: int
    gain: float
    variables: dict[str, float] = field(default_factory=dict)
    subject_id: str = ""  # the subject the file's header names ('' when the format has none)
    memo: str = ""
    refs: tuple[str, ...] = ()  # further subject reference fields (BioSigRZ's Sub. Ref-1, Sub. Ref-2)
    group: int = 0  # the record's group (BioSigRZ) within its file

    @property
    def stimulus(self) -> str:
        """'click' or the tone frequency in Hz ('16000 Hz'), as the summary and `--stimulus` spell it."""
        return "click" if self.frequency_hz == CLICK_HZ else f"{self.frequency_hz:.10g} Hz"


def sample_rate_from_period_us(period_us: float) -> float:
    """Hz from a sample period in µs stored as float32: read as its shortest decimal (40.96, as BioSigRZ's
    export prints it), so TDT's 24414.0625 Hz (25 MHz / 1024) is not off by float32 rounding."""
    return 1e6 / float(str(np.float32(period_us)))


def check_plausible(path: Path, what: str, value: float, low: float, high: float) -> float:
    """`value` if finite and within [low, high]; otherwise the file is malformed."""
    if not np.isfinite(value) or not low <= value <= high:
        raise UserError(f"'{path}' is not a valid recording file: {what} is {value:g}, outside [{low:g}, {high:g}]")
    return float(value)
