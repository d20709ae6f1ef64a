"""`python -m abr_tune.train` on bad input: exit 2, one error line, no traceback, nothing overwritten."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import yaml
from conftest import assert_user_error, run_cli, run_main, tiny_config


def _npz(path, n=12, length=200, nan_row=None, static_cols=4):
    rng = np.random.default_rng(0)
    signals = rng.normal(0, 0.1, (n, length)).astype(np.float32)
    if nan_row is not None:
        signals[nan_row, 5] = np.nan
    static = np.tile([[30.0, 80.0, 21.1, 3.0][:static_cols]], (n, 1)).astype(np.float32)
    np.savez(path, signals=signals, static=static, patient_id=np.arange(n) // 2)
    return path


def _config(tmp_path, **data):
    raw = tiny_config(tmp_path)
    raw["data"].update(data)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


CASES = {
    "malformed yaml": (lambda p: p / "x.yaml", "optim: [1,\n", "is not valid YAML"),
    "unknown key": (None, {"optim": {"learning_rate": 1e-3}}, "did you mean 'optim.lr'?"),
    "wrong type": (None, {"trainer": {"max_epochs": "many"}}, "'trainer.max_epochs' must be of type int"),
    "heads": (None, {"model": {"d_model": 32, "n_heads": 3}}, "must divide model.d_model"),
    "zero epochs": (None, {"trainer": {"max_epochs": 0}}, "trainer.max_epochs must be >= 1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_files(tmp_path, case, capsys):
    _, content, fragment = CASES[case]
    path = tmp_path / "cfg.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    assert_user_error(run_main(capsys, "abr_tune.train", "--config", str(path)), fragment)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: _npz(p / "short.npz", length=199), "199 samples"),
        (lambda p: _npz(p / "long.npz", length=201), "201 samples"),
        (lambda p: _npz(p / "nan.npz", nan_row=3), "NaN"),
        (lambda p: _npz(p / "cols.npz", static_cols=3), "static"),
        (lambda p: p / "missing.npz", "not found"),
        (lambda p: (p / "data.txt").write_text("x") and p / "data.txt", "extension"),
    ],
)
def test_bad_data_files(tmp_path, make, fragment, capsys):
    path = make(tmp_path)
    cfg = _config(tmp_path, source="file", path=str(path))
    assert_user_error(run_main(capsys, "abr_tune.train", "--config", str(cfg)), fragment)


def test_pickle_needs_explicit_opt_in(tmp_path, capsys):
    path = tmp_path / "abr.pkl"
    record = {"patient_id": 1, "static_params": [30, 80, 21.1, 3], "signal": [0.0] * 200,
              "v_peak": [6.0, 0.3], "v_peak_mask": [True, True]}
    path.write_bytes(pickle.dumps({"data": [record] * 4}))
    cfg = _config(tmp_path, source="file", path=str(path))
    assert_user_error(run_main(capsys, "abr_tune.train", "--config", str(cfg)), "allow_pickle")


def test_corrupt_checkpoint_for_resume(tmp_path, capsys):
    good = tmp_path / "good.pt"
    good.write_bytes(b"PK\x03\x04 truncated")
    before = good.read_bytes()
    assert_user_error(run_main(capsys, "abr_tune.train", "--resume", str(good)), "corrupt")
    assert good.read_bytes() == before
    assert_user_error(run_main(capsys, "abr_tune.train", "--resume", str(tmp_path / "nope.pt")), "not found")


def test_bad_override(tmp_path, capsys):
    assert_user_error(run_main(capsys, "abr_tune.train", "--override", "optim.lrr: 1"), "did you mean 'optim.lr'?")


def test_usage_errors_are_one_line():
    assert_user_error(run_cli("abr_tune.train", "--bogus"), "unrecognized arguments: --bogus")
    assert_user_error(run_cli("abr_tune.sample", "--checkpoint", "x.pt"), "required")
