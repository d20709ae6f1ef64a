"""Writers of small recording files in the formats labs record with, for tests that must always run.

Written from the formats' descriptions, independently of abr_tune's readers: a reader that misplaces
a field fails against them.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

TONE_VARS = [("Freq", "Hz"), ("Level", "dB"), ("Atten-A", "dB"), ("Phase", "deg")]
CLICK_VARS = [("Level", "dB"), ("Duration", "ms"), ("Phase", ""), ("Atten-A", "dB")]


def arf_group(subject: str, variables: list[tuple[str, str]], records: list[dict], memo: str = "") -> dict:
    """One group: `records` hold 'volts' (the stored values), 'values' (one per variable), and optionally
    'gain', 'n_averages', 'period_us'."""
    return {"subject": subject, "variables": variables, "records": records, "memo": memo}


def write_arf(path: Path, groups: list[dict]) -> Path:
    """A BioSigRZ .arf: 8810-byte file header, then per group a 626-byte header and its records
    (102-byte header, ten 36-byte cursors, float32 points)."""
    body, group_offsets, record_offsets = b"", [], []
    at = 8811  # BioSigRZ writes the first group one byte after its header; the offsets table says where
    for g, group in enumerate(groups):
        group_offsets.append(at)
        names = [n for n, _ in group["variables"]] + [".........."] * (10 - len(group["variables"]))
        units = [u for _, u in group["variables"]] + [""] * (10 - len(group["variables"]))
        head = struct.pack("<3h", g, len(record_offsets), len(group["records"]))
        head += b"".join(s.encode().ljust(n, b"\0") for s, n in ((group["subject"], 16), ("R1", 16), ("R2", 16),
                                                                  (group["memo"], 50)))
        head += struct.pack("<qq", 1_700_000_000, 1_700_000_100) + b"\0" * 200
        head += b"".join(n.encode().ljust(15, b"\0") for n in names) + b"".join(u.encode().ljust(5, b"\0")
                                                                               for u in units)
        head += struct.pack("<fihi", 5.12, 0, 1, 0) + b"\0" * 92
        assert len(head) == 626
        chunk = head
        for r, rec in enumerate(group["records"]):
            record_offsets.append(at + len(chunk))
            volts = np.asarray(rec["volts"], dtype="<f4")
            values = list(rec["values"]) + [0.0] * (10 - len(rec["values"]))
            rh = struct.pack("<hhqhhBcH", r, g, 0, 0, r + 1, 1, b"\0", volts.size)
            rh += struct.pack("<5f", 0.0, 10.0, rec.get("period_us", 40.96), 99.0, rec.get("gain", 20.0))
            rh += struct.pack("<3h", 1, rec.get("n_averages", 512), 0) + struct.pack("<qq", 0, 0)
            rh += struct.pack("<10f", *values)
            assert len(rh) == 102
            cursors = struct.pack("<9f", -1.0, *[0.0] * 8) * 10
            chunk += rh + cursors + volts.tobytes()
        body += chunk
        at += len(chunk)
    n_records = sum(len(g["records"]) for g in groups)
    header = struct.pack("<3h", 1, len(groups), n_records)
    header += struct.pack("<200i", *(group_offsets + [0] * (200 - len(group_offsets))))
    header += struct.pack("<2000i", *(record_offsets + [0] * (2000 - len(record_offsets))))
    header += struct.pack("<i", 0) + b"\0"
    data = header + body
    path.write_bytes(data)
    return path


def write_biosig_csv(path: Path, rows: list[dict], tone: bool = True) -> Path:
    """BioSigRZ's CSV export: rows hold 'uv' (points), 'level', and 'freq' when `tone`."""
    n = len(rows[0]["uv"])
    variables = ["Freq(Hz)", "Level(dB)"] if tone else ["Level(dB)", "Duration(ms)"]
    variables += ["..........()"] * 4
    cursors = [f"{c}{i}({u})" for i in range(1, 11) for c, u in (("T", "ms"), ("V", "uv"))]
    header = ["SGI", "Rec No.", "Gain", "No. Avgs", "No. Arts", "Time", "Chan", "Sub. ID", "Sub. Ref-1",
              "Sub. Ref-2", "Sub. Memo", "", *variables, "", *cursors, "", "Samp. Per.", "No. Samps.",
              "O.S. Time", "Data(uv)...", *map(str, range(n)), ""]
    lines = [",".join(header)]
    for i, row in enumerate(rows):
        values = [row["freq"], row["level"]] if tone else [row["level"], 0.1]
        cells = [i + 1, i, 20, 512, 0, 1713144215, 1, "1282", "B1", "baseline.csv", "", "", *values,
                 *[0.0] * 4, "", *[-1.0, 0.0] * 10, "", 40.96, n, 0.0, "", *row["uv"], ""]
        lines.append(",".join(map(str, cells)))
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


def write_epl(path: Path, levels: list[float], signals: np.ndarray, freq_khz: float = 16.0) -> Path:
    """An EPL ABR file: latin-1 header lines ended by CR, then one CRLF row per time point."""
    header = (f":RUN-3\tLEVEL SWEEP\tTEMP:207.44\t4/6/2007\t8:03 AM\t-3852.21HR:\r:SW EAR: R\tSW FREQ: {freq_khz:.2f}"
              "\t# AVERAGES: 512\tREP RATE (/sec): 40\tDRIVER: Starship\tSAMPLE (\u00b5sec): 10\t\r:NOTES-\r"
              ":CHAMBER-412\r:LEVELS:" + "".join(f"{lv:g};" for lv in levels) + "\r:DATA\r")
    rows = "".join("\t".join(f"{v: .6f}" for v in row) + "\r\n" for row in np.asarray(signals).T)
    path.write_bytes((header + rows).encode("latin-1"))
    return path
