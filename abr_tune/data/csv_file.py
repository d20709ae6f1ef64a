"""Reading a user's CSV: one recording per row, columns found by name as labs write them.

Each column abr-tune reads has a role (`config.names`): patient_id, the four conditions, and the
optional wave V marks. A header names a role in abr-tune's spelling or the original pipeline's
(`Age`, `Intensity`, `Stimulus Rate`, `FMP`, `V Latency`, ...), in any case or spacing, or
through `data.columns` ({role: header}). The sample columns are the rest; when there are other
columns too, the SEQUENCE_LENGTH columns named like samples (`s0`, `1`, `t12`, ...) are used and the
others are named in the notice as ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SEQUENCE_LENGTH, STATIC_NAMES
from ..config.names import ROLE_SPELLINGS, role_of, squash
from ..errors import UserError

REQUIRED = ("patient_id", *STATIC_NAMES)
OPTIONAL = ("v_latency_ms", "v_amplitude_uv", "response_present")
_SAMPLE_NAME = re.compile(r"(s|t|sample)?\d+")  # matched against squash(header)


def read_csv(path: Path, columns: dict[str, str]) -> dict[str, Any]:
    """The recordings of `path`; `columns` maps roles to headers where they differ from the accepted names."""
    import pandas as pd  # a declared dependency: fast and memory-lean on 200-column files

    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        message = " ".join(str(err).split())
        raise UserError(f"cannot read '{path}' as CSV ({message}); save it as UTF-8 comma-separated text") from None
    frame.columns = [str(name).strip() for name in frame.columns]
    found = find_columns(list(frame.columns), columns, path)
    if frame.empty:
        raise UserError(f"'{path}' has no recordings; the CSV needs a header row and one row per recording")
    samples, ignored = sample_columns([c for c in frame.columns if c not in found.values()])
    raw: dict[str, Any] = {
        "signals": _numbers(frame, samples, path),
        "static": _numbers(frame, [found[name] for name in STATIC_NAMES], path),
        "static_order": list(STATIC_NAMES),
        "patient_id": frame[found["patient_id"]].to_numpy(),
        "notes": [f"ignored columns that are neither samples nor read: {', '.join(ignored)}"] if ignored else [],
    }
    for role in OPTIONAL:
        if role in found:  # empty cells are read as NaN
            raw[role] = _numbers(frame, [found[role]], path)[:, 0]
    return raw


def find_columns(headers: list[str], mapping: dict[str, str], path: Path) -> dict[str, str]:
    """{role: header} for every role the file has; a missing required role or an ambiguous one is an error."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for role in (*REQUIRED, *OPTIONAL):
        if role in mapping:
            matches = [h for h in headers if h == mapping[role].strip()] or \
                [h for h in headers if squash(h) == squash(mapping[role])]
            if not matches:
                raise UserError(f"'{path}' has no column '{mapping[role]}' (data.columns: {{{role}: "
                                f"\"{mapping[role]}\"}}); its columns start {', '.join(headers[:8])}")
        else:
            matches = [h for h in headers if role_of(h) == role and h not in mapping.values()]
        if len(matches) > 1:
            raise UserError(f"'{path}': columns {', '.join(repr(m) for m in matches)} all name {role}; keep one "
                            f"or choose it with data.columns: {{{role}: \"<header>\"}}")
        if matches:
            found[role] = matches[0]
        elif role in REQUIRED:
            missing.append(role)
    if missing:
        looked = "; ".join(f"{role}: {', '.join(ROLE_SPELLINGS[role])}" for role in missing)
        raise UserError(
            f"'{path}' has no column {', '.join(repr(r) for r in missing)} (looked for any case or spacing of "
            f"{looked}); name yours with data.columns: {{{missing[0]}: \"<header>\"}}; the header needs "
            f"{', '.join(REQUIRED)} and {SEQUENCE_LENGTH} sample columns (e.g. s0..s{SEQUENCE_LENGTH - 1})"
        )
    return found


def sample_columns(rest: list[str]) -> tuple[list[str], list[str]]:
    """(sample columns, ignored columns) among the columns no role took."""
    named = [c for c in rest if _SAMPLE_NAME.fullmatch(squash(c))]
    if len(named) == SEQUENCE_LENGTH and len(rest) > len(named):
        return named, [c for c in rest if c not in named]
    return rest, []


def _numbers(frame: Any, columns: list[str], path: Path) -> np.ndarray:
    """The columns as a float array; the first cell that is not a number is named."""
    import pandas as pd

    try:
        return frame[columns].to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        for name in columns:
            bad = pd.to_numeric(frame[name], errors="coerce").isna() & frame[name].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                cell = frame[name].iloc[row]
                raise UserError(f"'{path}' row {row}, column '{name}' is not a number: {cell!r}") from None
        raise
