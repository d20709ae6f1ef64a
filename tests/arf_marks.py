"""The BioSigRZ development recordings' click series and cursor marks, read for the tests only (the
package's own .arf reader belongs to `abr_tune.data`; this reads just what the detector tests need).

Layout (Tucker-Davis's arfread): a header of int16 file type, group and record counts and
200 int32 group offsets; per group a header (names of its variables, e.g. Level) and then
its records: a fixed header (sample period, gain, number of averages, ten float32
variables), ten 36-byte cursors (float32 time in ms, float32 value, a label such as "I";
time -1 = unset) and the float32 samples. Values x 1e6 x gain are µV.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GROUP_VARIABLE_NAMES_AT = 6 + 16 * 3 + 50 + 16 + 200  # after numbers, ID/ref strings, memo, times, file names
GROUP_HEADER = GROUP_VARIABLE_NAMES_AT + 150 + 50 + 4 + 4 + 2 + 4 + 92
RECORD_HEADER = 4 + 8 + 2 + 2 + 1 + 1 + 2 + 20 + 6 + 16 + 40


@dataclass
class Record:
    signal_uv: np.ndarray
    sample_rate_hz: float
    level_db: float
    frequency_hz: float  # 0 for a click
    marks: dict[str, float]  # cursor label -> time ms


def read_records(path: Path) -> list[Record]:
    data = path.read_bytes()
    n_groups = struct.unpack_from("<h", data, 2)[0]
    out = []
    for offset in struct.unpack_from("<200i", data, 6)[:n_groups]:
        n_records = struct.unpack_from("<h", data, offset + 4)[0]
        at = offset + GROUP_VARIABLE_NAMES_AT
        names = [data[at + 15 * i: at + 15 * i + 15].split(b"\0")[0].decode("latin-1") for i in range(10)]
        p = offset + GROUP_HEADER
        for _ in range(n_records):
            npts = struct.unpack_from("<H", data, p + 18)[0]
            period_us, _, gain = struct.unpack_from("<3f", data, p + 28)
            variables = dict(zip(names, struct.unpack_from("<10f", data, p + RECORD_HEADER - 40), strict=True))
            marks = {}
            for c in range(10):
                time_ms, = struct.unpack_from("<f", data, p + RECORD_HEADER + 36 * c)
                label = data[p + RECORD_HEADER + 36 * c + 8: p + RECORD_HEADER + 36 * c + 12].split(b"\0")[0]
                if time_ms >= 0 and label:
                    marks.setdefault(label.decode("latin-1"), time_ms)
            p += RECORD_HEADER + 360
            signal = np.frombuffer(data, "<f4", npts, p).astype(np.float64) * 1e6 * gain
            p += 4 * npts
            out.append(Record(signal, 1e6 / period_us, variables["Level"], variables.get("Freq", 0.0), marks))
    return out
