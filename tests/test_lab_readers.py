"""Readers of the files labs record with: BioSigRZ .arf and its CSV export, EPL and its analyst's marks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT
from lab_files import CLICK_VARS, TONE_VARS, arf_group, write_arf, write_biosig_csv, write_epl

from abr_tune.data.arf import read_arf
from abr_tune.data.biosig_csv import read_biosig_csv
from abr_tune.data.epl import read_epl, read_epl_marks
from abr_tune.errors import UserError

DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="development recordings (../shared/data) absent")
RNG = np.random.default_rng(0)


def _volts(n: int = 244) -> np.ndarray:
    return (RNG.normal(size=n) * 5e-8).astype(np.float32)  # ~1 µV after 1e6 × gain 20


def _two_groups(tmp_path):
    tone = [{"volts": _volts(), "values": [8000.0, lv, 0.0, 270.0], "n_averages": 512 - i}
            for i, lv in enumerate((90.0, 70.0))]
    click = [{"volts": _volts(), "values": [80.0, 0.1, 0.0, 0.0], "gain": 10.0, "n_averages": 300}]
    groups = [arf_group("1282", TONE_VARS, tone, memo="left ear"), arf_group("1283", CLICK_VARS, click)]
    return write_arf(tmp_path / "mixed.arf", groups), tone, click


def test_arf_reads_tone_and_click_groups_in_microvolts(tmp_path):
    path, tone, click = _two_groups(tmp_path)
    records = read_arf(path)
    assert [(r.level_db_spl, r.frequency_hz, r.n_averages, r.gain, r.group) for r in records] == [
        (90.0, 8000.0, 512, 20.0, 0), (70.0, 8000.0, 511, 20.0, 0), (80.0, 0.0, 300, 10.0, 1)]
    for record, stored, gain in ((records[0], tone[0]["volts"], 20.0), (records[2], click[0]["volts"], 10.0)):
        assert record.signal_uv.dtype == np.float64
        np.testing.assert_allclose(record.signal_uv, stored.astype(np.float64) * 1e6 * gain, rtol=0, atol=1e-12)
    assert records[0].sample_rate_hz == 24414.0625  # 1e6 / 40.96 µs, not float32's 40.959999
    assert records[0].variables == {"Freq": 8000.0, "Level": 90.0, "Atten-A": 0.0, "Phase": 270.0}
    assert (records[0].subject_id, records[0].memo, records[2].subject_id) == ("1282", "left ear", "1283")
    assert records[2].stimulus == "click" and records[0].stimulus == "8000 Hz"


def test_arf_group_without_records_reads_as_none(tmp_path):
    assert read_arf(write_arf(tmp_path / "empty.arf", [arf_group("7", CLICK_VARS, [])])) == []


@pytest.mark.parametrize("cut, fragment", [(4, "ends inside record 0 of group 1"),
                                           (1400, "ends inside the header of record 0 of group 1"),
                                           (20_000, "shorter than the 8810-byte file header")])
def test_arf_truncated_is_refused_naming_file_and_place(tmp_path, cut, fragment):
    path, *_ = _two_groups(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:max(len(data) - cut, 100)])
    with pytest.raises(UserError, match=fragment) as err:
        read_arf(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_arf_without_level_or_with_a_bad_group_count_is_refused(tmp_path):
    no_level = [{"volts": _volts(8), "values": [1.0]}]
    with pytest.raises(UserError, match="has no Level variable"):
        read_arf(write_arf(tmp_path / "a.arf", [arf_group("1", [("Duration", "ms")], no_level)]))
    path = tmp_path / "b.arf"
    path.write_bytes(b"\x01\x00\xff\x7f" + b"\0" * 9000)
    with pytest.raises(UserError, match="32767 groups"):
        read_arf(path)


def test_biosig_csv_reads_points_levels_and_frequencies(tmp_path):
    rows = [{"uv": RNG.normal(size=12).round(9).tolist(), "level": 90.0 - 5 * i, "freq": 4000.0} for i in range(3)]
    records = read_biosig_csv(write_biosig_csv(tmp_path / "e.csv", rows))
    assert [(r.level_db_spl, r.frequency_hz, r.n_averages, r.gain) for r in records] == [
        (90.0, 4000.0, 512, 20.0), (85.0, 4000.0, 512, 20.0), (80.0, 4000.0, 512, 20.0)]
    np.testing.assert_array_equal(records[1].signal_uv, rows[1]["uv"])
    assert records[0].sample_rate_hz == 24414.0625 and records[0].subject_id == "1282"
    clicks = read_biosig_csv(write_biosig_csv(tmp_path / "c.csv", rows, tone=False))
    assert {r.frequency_hz for r in clicks} == {0.0}


def test_biosig_csv_truncated_or_foreign_is_refused(tmp_path):
    path = write_biosig_csv(tmp_path / "e.csv", [{"uv": [0.1] * 12, "level": 90.0, "freq": 4000.0}])
    path.write_text(path.read_text().rsplit(",", 8)[0] + "\n")
    with pytest.raises(UserError, match=r"line 2 is truncated: \d+ of its 12 points"):
        read_biosig_csv(path)
    other = tmp_path / "o.csv"
    other.write_text("patient_id,age\n1,2\n")
    with pytest.raises(UserError, match="is not a BioSigRZ CSV export"):
        read_biosig_csv(other)


def test_epl_reads_one_record_per_level(tmp_path):
    signals = RNG.normal(size=(3, 50)).round(6)
    records = read_epl(write_epl(tmp_path / "ABR-1-1", [10.0, 20.0, 30.0], signals))
    assert [(r.level_db_spl, r.frequency_hz, r.n_averages, r.sample_rate_hz) for r in records] == [
        (10.0, 16000.0, 512, 1e5), (20.0, 16000.0, 512, 1e5), (30.0, 16000.0, 512, 1e5)]
    np.testing.assert_allclose(records[2].signal_uv, signals[2], atol=1e-9)
    assert np.isnan(records[0].gain)


def test_epl_truncated_is_refused(tmp_path):
    path = write_epl(tmp_path / "ABR-1-1", [10.0, 20.0, 30.0], RNG.normal(size=(3, 50)))
    path.write_bytes(path.read_bytes().rsplit(b"\t", 1)[0])  # the last row lost its last value
    with pytest.raises(UserError, match="149 data values do not fill 3 level columns"):
        read_epl(path)
    path.write_bytes(path.read_bytes()[:-8] + b" -")  # cut inside a number
    with pytest.raises(UserError, match="not a number"):
        read_epl(path)


def test_epl_marks_negative_latency_is_no_peak(tmp_path):
    path = tmp_path / "ABR-1-1-16.0kHz-analyzed.txt"
    path.write_text("Threshold (dB SPL): 25.00\nFrequency (kHz): 16.00\nFilter history (zpk format):\n"
                    "NOTE: Negative latencies indicate no peak\n"
                    "Level\t1msec Avg\t1msec StDev\tP1 Latency\tP1 Amplitude\tN1 Latency\tN1 Amplitude\t\n"
                    "80.00\t0.1\t0.2\t1.79\t68.3\t2.32\t-43.1\n20.00\t0.1\t0.2\t-1.00\t0.5\t-1.00\t-0.6\n")
    marks = read_epl_marks(path)
    assert (marks.frequency_hz, marks.threshold_db_spl) == (16000.0, 25.0)
    np.testing.assert_array_equal(marks.levels, [80.0, 20.0])
    np.testing.assert_array_equal(marks.latency_ms["P1"], [1.79, np.nan])
    np.testing.assert_array_equal(marks.amplitude_uv["N1"], [-43.1, np.nan])


@needs_data
def test_arf_reproduces_biosigrz_csv_export():
    folder = DATA / "tdt-samp8-dev"
    arf = read_arf(folder / "Samp8 B1 baseline" / "1282_tone.arf")
    export = read_biosig_csv(folder / "B1_1282_tone baseline (BioSigRZ CSV export).csv")
    assert len(arf) == len(export) == 66
    assert [(r.level_db_spl, r.frequency_hz) for r in arf] == [(r.level_db_spl, r.frequency_hz) for r in export]
    assert max(np.abs(a.signal_uv - e.signal_uv).max() for a, e in zip(arf, export, strict=True)) < 1e-4
    assert {r.sample_rate_hz for r in arf} == {24414.0625}


@needs_data
def test_epl_development_files_and_marks():
    folder = DATA / "epl-ncrar"
    records = read_epl(folder / "CAP-139-5")
    marks = read_epl_marks(folder / "CAP-139-5-16.0kHz-analyzed.txt")
    assert len(records) == 13 and records[0].signal_uv.size == 1700 and records[0].n_averages == 128
    assert sorted(marks.levels) == sorted(r.level_db_spl for r in records)
    assert marks.frequency_hz == records[0].frequency_hz == 16000.0
    loudest = max(records, key=lambda r: r.level_db_spl)  # the marked P1 lies on the raw trace's peak, in µV
    p1 = int(round(marks.latency_ms["P1"][0] * loudest.sample_rate_hz / 1e3))
    assert abs(loudest.signal_uv[p1] - marks.amplitude_uv["P1"][0]) < 10.0
    assert len(read_epl(folder / "ABR-52-3")) == 12
