"""A resume notices that the data changed: a fingerprint of the data (the file's SHA-256 and size, or
the simulator's settings) in every checkpoint and experiment, checked by train --resume and a
search's --resume/--extend, which refuse naming the file and how to proceed."""

from __future__ import annotations

import hashlib
import json
import signal
import time

import numpy as np
import pytest
import yaml
from background import Background
from conftest import assert_user_error, free_port, run_cli, search_base, small_npz, tiny_config

from abr_tune.checkpoint import load_checkpoint
from abr_tune.config import from_dict
from abr_tune.data.fingerprint import fingerprint


def _rewrite(path) -> None:
    """Other patients at 5x the amplitude: the same name, other data."""
    with np.load(path) as f:
        arrays = dict(f)
    arrays["signals"] = arrays["signals"] * 5
    arrays["patient_id"] = arrays["patient_id"] + 100
    np.savez(path, **arrays)


def test_train_resume_refuses_changed_data_and_clears_a_cut_save(tmp_path):
    data = small_npz(tmp_path / "d.npz")
    raw = tiny_config(tmp_path, data={"source": "file", "path": str(data)}, trainer={"max_epochs": 2})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    assert run_cli("abr_tune.train", "--config", str(tmp_path / "cfg.yaml")).returncode == 0
    last = tmp_path / "runs/tiny/checkpoints/tiny_last.pt"
    saved = load_checkpoint(last)["data_fingerprint"]
    assert saved["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest() and saved["size"] == data.stat().st_size
    assert saved["path"] == str(data.resolve())

    original = data.read_bytes()
    _rewrite(data)
    proc = run_cli("abr_tune.train", "--resume", str(last), "--override", "trainer.max_epochs: 4")
    assert_user_error(proc, f"the data changed since '{last}' was written: '{data.resolve()}' now has")
    assert "restore the original file, or start a new run" in proc.stderr
    assert load_checkpoint(last)["epoch"] == 2  # nothing trained, nothing written

    data.write_bytes(original)  # the same bytes again: the resume runs, and a save a kill cut short is gone
    cut = last.parent / ".tiny_last.pt.abc123.tmp"
    cut.write_bytes(b"half a checkpoint")
    proc = run_cli("abr_tune.train", "--resume", str(last), "--override", "trainer.max_epochs: 4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_checkpoint(last)["epoch"] == 4 and not cut.exists()


def test_the_simulator_is_fingerprinted_by_its_settings(tmp_path):
    cfg = from_dict(tiny_config(tmp_path))
    before = fingerprint(cfg.data)
    assert before["source"] == "synthetic" and before["synthetic"]["seed"] == cfg.data.synthetic.seed
    cfg.data.synthetic.seed += 1
    assert fingerprint(cfg.data) != before


@pytest.mark.timeout(300)
def test_a_search_resume_or_extend_refuses_changed_data(tmp_path):
    data = small_npz(tmp_path / "d.npz")
    base = search_base(tmp_path, max_epochs=2)
    base["data"] = {"source": "file", "path": str(data)}
    space = {"base": base, "num_samples": 2, "max_concurrent": 1,
             "scheduler": {"max_t": 2, "grace_period": 2, "reduction_factor": 2},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    exp = tmp_path / "runs" / "f"
    search = Background("abr_tune.search", "--space", str(tmp_path / "space.yaml"), "--storage-path",
                        str(tmp_path / "runs"), "--name", "f", "--dashboard-port", str(free_port()))
    search.wait_for("started with configuration")
    deadline = time.monotonic() + 120
    while not list(exp.glob("experiment_state-*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    search.signal(signal.SIGKILL)
    search.kill_group()
    recorded = json.loads((exp / "data_fingerprint.json").read_text())
    assert recorded["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()

    _rewrite(data)
    for flag in ("--resume", "--extend"):
        proc = run_cli("abr_tune.search", flag, str(exp))
        assert_user_error(proc, f"the data changed since experiment '{exp}' was written: '{data.resolve()}'")
        assert "start a new search on the new data with --space" in proc.stderr
