"""Tucker-Davis BioSigRZ `.arf` files: groups of averaged records, each group with its stimulus variables.

Layout (little-endian; learnt from the open-source `arfread` readers for MATLAB and Python, checked
against BioSigRZ's own CSV export of the same file to 1e-4 µV):
- file header, 8810 bytes: file type, number of groups, number of records (int16 each), then the
  byte offset of each group (200 × int32) and of each record (2000 × int32), then a file pointer;
- group header, 626 bytes at its offset: group number, first record, number of records (int16),
  subject id (16 chars), two subject references (16 each), memo (50), begin and end times (int64;
  int32 in the older BioSigRP files, which are refused), two SigGen file names (100 each), the
  names (10 × 15 chars) and units (10 × 5) of the stimulus variables, then 106 bytes of settings;
- each record, after its group header: 102 bytes (number of points at 18 as uint16; onset delay,
  duration, sample period in µs, artefact threshold and gain at 20..40 as float32; the number of
  averages at 42 as int16; the ten variable values at 62 as float32), ten 36-byte cursors, then the
  points (float32). Some published readers take the cursors to follow the points; the export shows
  they precede them (read after the header, the first 90 "points" are the cursors' -1/0 pattern).
Stored values are volts at the amplifier's output before its gain; like the export's `Data(uv)`, a
record in µV is value × 1e6 × the record's gain. `n_averages` is the record's own count (8 for a
run stopped early, where the CSV export of the same file says 512). A click group has no `Freq` variable: its records
get frequency_hz = 0 (`recording.CLICK_HZ`).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import UserError
from .recording import CLICK_HZ, Record, check_plausible, sample_rate_from_period_us

FILE_HEADER = struct.Struct("<3h200i2000ii")
GROUP_HEADER = struct.Struct("<3h16s16s16s50sqq100s100s" + "15s" * 10 + "5s" * 10 + "fihi92s")
RECORD_HEADER = struct.Struct("<hhqhhBcHfffffhhhqq10f")
CURSOR_BYTES = 10 * 36
RP_GROUP_HEADER = GROUP_HEADER.size - 8  # BioSigRP: the group's two times are int32
UNUSED_VARIABLE = ".........."  # BioSigRZ names an unused variable slot with dots
MAX_POINTS = 1_000_000


def read_arf(path: str | Path) -> list[Record]:
    """Every record of a BioSigRZ .arf file, in file order (group by group), in µV; a malformed or
    truncated file is a UserError naming the file and the fault."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read '{path}' ({err.strerror or err})") from None
    if len(data) < FILE_HEADER.size:
        raise UserError(f"'{path}' is not a BioSigRZ .arf file: {len(data)} bytes, shorter than the "
                        f"{FILE_HEADER.size}-byte file header")
    header = FILE_HEADER.unpack_from(data, 0)
    n_groups, group_offsets, record_offsets = header[1], header[3:203], header[203:2203]
    if not 1 <= n_groups <= 200:
        raise UserError(f"'{path}' is not a BioSigRZ .arf file: its header gives {n_groups} groups (1 to 200)")
    if record_offsets[0] - group_offsets[0] == RP_GROUP_HEADER:
        raise UserError(f"'{path}' is a BioSigRP .arf file (the older RP system); only BioSigRZ files are read: "
                        "export it from BioSigRP as CSV and list the .csv instead")
    records: list[Record] = []
    for g in range(n_groups):
        records.extend(_read_group(data, group_offsets[g], g, path))
    return records  # [] for a file whose groups hold no records (a run stopped before its first average)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _read_group(data: bytes, offset: int, g: int, path: Path) -> list[Record]:
    if not FILE_HEADER.size <= offset <= len(data) - GROUP_HEADER.size:
        raise UserError(f"'{path}' is truncated or corrupt: group {g} starts at byte {offset} of {len(data)}")
    fields = GROUP_HEADER.unpack_from(data, offset)
    n_records = fields[2]
    subject, ref1, ref2, memo = (_text(f) for f in fields[3:7])
    names = [_text(f) for f in fields[11:21]]
    if n_records < 0:
        raise UserError(f"'{path}' is corrupt: group {g} gives {n_records} records")
    at = offset + GROUP_HEADER.size
    records = []
    for r in range(n_records):
        record, at = _read_record(data, at, names, (g, r), path)
        records.append(Record(**record, subject_id=subject, memo=memo, refs=(ref1, ref2), group=g))
    return records


def _read_record(data: bytes, at: int, names: list[str], where: tuple[int, int], path: Path) -> tuple[dict, int]:
    """The record at byte `at` (fields for `Record`) and the byte after it."""
    name = f"record {where[1]} of group {where[0]}"
    if at + RECORD_HEADER.size > len(data):
        raise UserError(f"'{path}' is truncated: it ends inside the header of {name} (byte {len(data)})")
    f = RECORD_HEADER.unpack_from(data, at)
    n_points, period_us, gain, n_averages, values = f[7], f[10], f[12], f[14], f[18:28]
    if not 0 < n_points <= MAX_POINTS:
        raise UserError(f"'{path}' is corrupt: {name} has {n_points} points")
    start = at + RECORD_HEADER.size + CURSOR_BYTES
    end = start + 4 * n_points
    if end > len(data):
        raise UserError(f"'{path}' is truncated: it ends inside {name}, whose {n_points} points need bytes "
                        f"up to {end} of {len(data)}")
    # float32 values read as their shortest decimal (0.1 ms, not 0.10000000149), as the export prints them
    variables = {n: float(str(np.float32(v))) for n, v in zip(names, values, strict=True)
                 if n and not n.startswith(UNUSED_VARIABLE)}
    if "Level" not in variables:
        raise UserError(f"'{path}': {name} has no Level variable (variables: {', '.join(variables) or 'none'}); "
                        "abr-tune needs each record's stimulus level")
    stored = np.frombuffer(data, dtype="<f4", count=n_points, offset=start)
    gain = check_plausible(path, f"the gain of {name}", gain, 1e-6, 1e9)
    record = {
        "signal_uv": stored.astype(np.float64) * 1e6 * gain,
        "sample_rate_hz": check_plausible(path, f"the sample rate of {name} (Hz)",
                                          sample_rate_from_period_us(period_us) if period_us > 0 else np.nan,
                                          100.0, 1e7),
        "level_db_spl": check_plausible(path, f"the level of {name} (dB)", variables["Level"], -50.0, 200.0),
        "frequency_hz": check_plausible(path, f"the frequency of {name} (Hz)", variables.get("Freq", CLICK_HZ),
                                        0.0, 1e6),
        "n_averages": int(n_averages),
        "gain": gain,
        "variables": variables,
    }
    return record, end
