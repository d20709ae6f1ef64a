"""The EPL development recording and its expert's P1 marks (ncrar-abr's formats), read for the tests only.

EPL: a text header ending in ":LEVELS:l1;l2;...:DATA", then one row per sample with one
column per level (µV, 10 µs sampling). The analysis: a tab-separated table after a
"Level" header line: level, 1 ms average and SD, P1 latency and amplitude, N1 latency and
amplitude (a negative latency means no peak).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

EPL_FS = 100000.0  # 10 µs sampling


def read_epl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(levels dB SPL, signals (levels, samples) µV)."""
    head, data = path.read_bytes().decode("latin-1").split(":DATA", 1)
    levels = np.array([float(v) for v in re.search(r"LEVELS:([^:]*)$", head).group(1).split(";") if v.strip()])
    return levels, np.array(data.split(), dtype=np.float64).reshape(-1, len(levels)).T


def read_marks(path: Path) -> dict[float, tuple[float, float]]:
    """{level: (P1 latency ms, P1 amplitude)} from an analysis file."""
    lines = path.read_text(encoding="latin-1").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Level")) + 1
    rows = [line.split("\t") for line in lines[start:] if line.strip()]
    return {float(r[0]): (float(r[3]), float(r[4])) for r in rows}
