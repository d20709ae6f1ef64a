"""BioSigRZ's CSV export: one row per record, the stimulus variables and the points in µV.

The header row begins `SGI,Rec No.,Gain,No. Avgs,...,Sub. ID,Sub. Ref-1,Sub. Ref-2,Sub. Memo,` then
the group's variables as `Name(unit)` (`Freq(Hz)`, `Level(dB)`, unused slots `..........()`), ten
cursor pairs `T1(ms),V1(uv)...`, and ends `Samp. Per.,No. Samps.,O.S. Time,Data(uv)...` followed by
the sample numbers; each row's points follow its `Data(uv)...` cell. Its `No. Avgs` can differ from
the .arf's per-record count (the export of a file whose averaging stopped early says 512 where the
.arf stores 8): the export appears to write the requested count, the .arf the one acquired. A click export has no `Freq`
variable: its records get frequency_hz = 0 (`recording.CLICK_HZ`), as `arf.read_arf` does.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from .recording import CLICK_HZ, Record, check_plausible, sample_rate_from_period_us

MAGIC = "SGI,Rec No.,"
NEEDED = ("Gain", "No. Avgs", "Sub. ID", "Sub. Memo", "Samp. Per.", "No. Samps.", "Data(uv)...")
_VARIABLE = re.compile(r"([^(]+)\((.*)\)")  # Level(dB) -> Level, dB


def read_biosig_csv(path: str | Path) -> list[Record]:
    """Every record of a BioSigRZ CSV export, in row order, in µV (the export's own unit)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="latin-1") as f:
            rows = list(csv.reader(f))
    except (OSError, csv.Error) as err:
        raise UserError(f"cannot read '{path}' as a BioSigRZ CSV export ({err})") from None
    if not rows or not ",".join(rows[0]).startswith(MAGIC):
        raise UserError(f"'{path}' is not a BioSigRZ CSV export: its first row does not begin '{MAGIC}'")
    header = [h.strip() for h in rows[0]]
    missing = [name for name in NEEDED if name not in header]
    if missing:
        raise UserError(f"'{path}' is not a complete BioSigRZ CSV export: its header lacks {', '.join(missing)}")
    variables = _variable_columns(header)
    if "Level" not in variables:
        raise UserError(f"'{path}' has no Level(...) column; abr-tune needs each record's stimulus level")
    records = [_record(row, header, variables, n + 2, path) for n, row in enumerate(rows[1:]) if any(row)]
    return records


def _variable_columns(header: list[str]) -> dict[str, int]:
    """{variable name: column} for the `Name(unit)` columns between `Sub. Memo` and the first cursor."""
    start = header.index("Sub. Memo") + 1
    end = next((i for i, h in enumerate(header) if h == "T1(ms)"), header.index("Samp. Per."))
    found = {}
    for i in range(start, end):
        match = _VARIABLE.fullmatch(header[i])
        if match and not match.group(1).startswith("."):
            found[match.group(1).strip()] = i
    return found


def _record(row: list[str], header: list[str], variables: dict[str, int], line: int, path: Path) -> Record:
    def number(name: str) -> float:
        try:
            return float(row[header.index(name)])
        except (IndexError, ValueError):
            raise UserError(f"'{path}' line {line}: the {name} cell is missing or not a number") from None

    n_samples, first = int(number("No. Samps.")), header.index("Data(uv)...") + 1
    cells = row[first:first + n_samples]
    if n_samples < 1 or len(cells) < n_samples or "" in cells:
        raise UserError(f"'{path}' line {line} is truncated: {len([c for c in cells if c])} of its "
                        f"{n_samples} points are present")
    try:
        signal = np.array(cells, dtype=np.float64)
    except ValueError:
        raise UserError(f"'{path}' line {line}: a point is not a number") from None
    values = {name: number(header[i]) for name, i in variables.items()}
    return Record(
        signal_uv=signal,
        sample_rate_hz=check_plausible(path, f"the sample rate on line {line} (Hz)",
                                       sample_rate_from_period_us(number("Samp. Per.")), 100.0, 1e7),
        level_db_spl=check_plausible(path, f"the level on line {line} (dB)", values["Level"], -50.0, 200.0),
        frequency_hz=check_plausible(path, f"the frequency on line {line} (Hz)", values.get("Freq", CLICK_HZ),
                                     0.0, 1e6),
        n_averages=int(number("No. Avgs")), gain=number("Gain"), variables=values,
        subject_id=row[header.index("Sub. ID")].strip(), memo=row[header.index("Sub. Memo")].strip(),
        refs=tuple(row[header.index(h)].strip() for h in ("Sub. Ref-1", "Sub. Ref-2") if h in header),
    )
