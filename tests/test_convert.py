"""`python -m abr_tune.convert`: a manifest of a lab's files to one .npz, with a summary of what was kept."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, assert_user_error, run_cli
from lab_files import CLICK_VARS, TONE_VARS, arf_group, write_arf, write_epl

from abr_tune.convert import main

DATA = ROOT.parent / "shared" / "data"
MEMBERS = {"signals", "sample_rate_hz", "patient_id", "static", "static_order", "static_units", "labels",
           "label_order", "source_file", "source_record", "n_averages"}
RNG = np.random.default_rng(1)


def _records(levels, freq=None, zero_first=False):
    out = []
    for i, level in enumerate(levels):
        volts = np.zeros(244, np.float32) if zero_first and i == 0 else (RNG.normal(size=244) * 5e-8).astype(np.float32)
        out.append({"volts": volts, "values": [freq, level, 0.0, 0.0] if freq else [level, 0.1, 0.0, 0.0],
                    "n_averages": 500 + i})
    return out


@pytest.fixture
def lab(tmp_path):
    """Two mice: 11's file holds a tone group and a click group; 12's click file names '12X' in its header."""
    (tmp_path / "base").mkdir()
    write_arf(tmp_path / "base" / "11.arf", [arf_group("11", TONE_VARS, _records([90.0, 70.0], freq=16000.0)),
                                             arf_group("11", CLICK_VARS, _records([80.0]))])
    write_arf(tmp_path / "base" / "12_click.arf", [arf_group("12X", CLICK_VARS, _records([80.0, 60.0, 40.0],
                                                                                          zero_first=True))])
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,subject,age_months,time_point,treatment,species\n"
                        "base/11.arf,11,3,baseline,,mouse\nbase/12_click.arf,12,9.5,24h,PSI,mouse\n")
    return manifest


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_converts_a_lab_folder_with_units_labels_and_provenance(lab, capsys):
    code, out = _run(capsys, lab, "--out", lab.parent / "rec.npz")
    assert code == 0
    d = np.load(lab.parent / "rec.npz")
    assert set(d.files) == MEMBERS | {"species"}
    assert d["signals"].dtype == np.float32 and d["signals"].shape == (5, 244)  # 6 records, one all zero
    assert float(d["sample_rate_hz"]) == 24414.0625 and str(d["species"]) == "mouse"
    assert d["static_order"].tolist() == ["intensity", "frequency", "age"]
    assert d["static_units"].tolist() == ["dB SPL", "Hz", "months"]
    np.testing.assert_array_equal(d["static"], [[90, 16000, 3], [70, 16000, 3], [80, 0, 3], [60, 0, 9.5], [40, 0, 9.5]])
    assert d["label_order"].tolist() == ["time_point", "treatment"]
    assert d["labels"].tolist() == [["baseline", ""]] * 3 + [["24h", "PSI"]] * 2
    assert d["patient_id"].tolist() == ["11", "11", "11", "12", "12"]
    assert d["source_file"].tolist() == ["base/11.arf"] * 3 + ["base/12_click.arf"] * 2
    assert d["source_record"].tolist() == [0, 1, 2, 1, 2]
    assert d["n_averages"].tolist() == [500, 501, 500, 501, 502]
    assert "base/12_click.arf record 0 (all zero)" in out.err and "abr-tune: notice:" in out.err
    assert "base/12_click.arf: header names '12X' (records 0-2 of 3), manifest '12'" in out.out
    assert "the manifest's subject is used" in out.out
    assert "click: 3 (80:1 60:1 40:1)" in out.out and "16000 Hz: 2 (90:1 70:1)" in out.out


def test_stimulus_keeps_one_and_drops_frequency(lab, capsys):
    code, out = _run(capsys, lab, "--out", lab.parent / "click.npz", "--stimulus", "click")
    d = np.load(lab.parent / "click.npz")
    assert d["static_order"].tolist() == ["intensity", "age"] and len(d["signals"]) == 3
    assert "dropped 2 record(s) of other stimuli (--stimulus): 16000 Hz 2" in out.out
    _run(capsys, lab, "--out", lab.parent / "tone.npz", "--stimulus", "16000")
    assert np.load(lab.parent / "tone.npz")["static"][:, 0].tolist() == [90.0, 70.0]


def test_different_sample_rates_are_refused_naming_them(lab):
    write_epl(lab.parent / "ABR-1", [10.0, 20.0], RNG.normal(size=(2, 50)))
    lab.write_text(lab.read_text() + "ABR-1,13,3,baseline,,mouse\n")
    proc = run_cli("abr_tune.convert", str(lab), "--out", str(lab.parent / "x.npz"))
    assert_user_error(proc, "differ in sample rate or length")
    assert "100000 Hz × 50 samples: 1 file(s), e.g. ABR-1" in proc.stderr and "--stimulus" in proc.stderr
    assert not (lab.parent / "x.npz").exists()


@pytest.mark.parametrize("manifest, fragment", [
    ("", "is empty"),
    ("file,subject\n", "lists no files"),
    ("path,subject\nbase/11.arf,11\n", "has no file column"),
    ("file,subject\nbase/nope.arf,11\n", "1 file(s) listed in"),
    ("file,subject\nbase/bad.arf,11\n", "is truncated"),
    ("file,subject,age_months\nbase/11.arf,11,-2\n", "outside [0, 1500]"),
    ("file,subject,age_months\nbase/11.arf,11,old\n", "names a unit (months) but is not a finite number"),
    ("file,subject,intensity\nbase/11.arf,11,3\n", "which the recordings give"),
])
def test_bad_manifests_and_files_are_one_error_line(lab, capsys, manifest, fragment):
    data = (lab.parent / "base" / "11.arf").read_bytes()
    (lab.parent / "base" / "bad.arf").write_bytes(data[:-100])
    lab.write_text(manifest)
    with pytest.raises(SystemExit) as exit_info:
        main([str(lab), "--out", str(lab.parent / "x.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("abr-tune: error:")
    assert fragment in err[0]
    assert not (lab.parent / "x.npz").exists()


def test_existing_out_needs_force_and_bad_stimulus_is_refused(lab, capsys):
    out = lab.parent / "rec.npz"
    out.write_bytes(b"keep me")
    with pytest.raises(SystemExit):
        main([str(lab), "--out", str(out)])
    assert "already exists; choose another --out or pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    for bad in ("-5", "nan", "tone"):
        with pytest.raises(SystemExit):
            main([str(lab), "--out", str(lab.parent / "y.npz"), "--stimulus", bad])
        assert "--stimulus must be 'click' or a tone frequency in Hz" in capsys.readouterr().err
    assert main([str(lab), "--out", str(out), "--force"]) == 0 and len(np.load(out)["signals"]) == 5
    assert not list(lab.parent.glob(".*partial"))


@pytest.mark.skipif(not DATA.is_dir(), reason="development recordings (../shared/data) absent")
def test_development_manifest_click(tmp_path, capsys):
    code, out = _run(capsys, DATA / "tdt-samp8-dev" / "manifest.csv", "--out", tmp_path / "c.npz",
                     "--stimulus", "click")
    d = np.load(tmp_path / "c.npz")
    assert d["signals"].shape[1] == 244 and float(d["sample_rate_hz"]) == 24414.0625
    assert len(set(d["patient_id"].tolist())) == 31 and set(d["static"][:, 0].tolist()) <= set(range(10, 95, 5))
    assert "dropped 1 file(s) holding no records: Samp8 A1 baseline/1293_click2.arf" in out.out
    assert "differ from the manifest" in out.out
