"""Trust is decided per file: a pickle given to evaluate --data is read only with --allow-pickle, never
on the strength of the checkpoint's data.allow_pickle; a checkpoint with NaN EMA weights is refused by
sample and evaluate in one line instead of NaN waveforms or a traceback."""

from __future__ import annotations

import pickle

import pytest
import torch
from conftest import assert_user_error, run_cli, tiny_config

from abr_tune.fidelity.evaluation import EvalOptions, _eval_config
from abr_tune.training import train_abr


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what an attacker's file does when unpickled: here, create a file
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def trusting_checkpoint(tmp_path_factory):
    """A tiny checkpoint whose config says data.allow_pickle: true (its training file was trusted)."""
    tmp = tmp_path_factory.mktemp("ckpt")
    path = train_abr(tiny_config(tmp, trainer={"max_epochs": 1}))["best_checkpoint"]
    state = torch.load(path, weights_only=True)
    state["config"]["data"].update(allow_pickle=True)
    torch.save(state, path)
    return path


def test_evaluate_does_not_unpickle_a_data_file_without_its_own_opt_in(trusting_checkpoint, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Evil(marker)))
    proc = run_cli("abr_tune.evaluate", "--checkpoint", trusting_checkpoint, "--data", str(evil), "--split", "all",
                   "--out", str(tmp_path / "eval"))
    assert_user_error(proc, f"'{evil}' is a pickle, which can run code when loaded: for a file you trust, add "
                            "--allow-pickle")
    assert "--override" not in proc.stderr and not marker.exists() and not (tmp_path / "eval").exists()
    # In the library too: the checkpoint's trust is not inherited by another file.
    state = torch.load(trusting_checkpoint, weights_only=True)
    assert _eval_config(state, EvalOptions(data_path=str(evil))).data.allow_pickle is False
    assert _eval_config(state, EvalOptions(data_path=str(evil), allow_pickle=True)).data.allow_pickle is True


def test_nan_ema_weights_are_refused_by_sample_and_evaluate(trusting_checkpoint, tmp_path):
    state = torch.load(trusting_checkpoint, weights_only=True)
    name = next(iter(state["ema"]["shadow"]))
    state["ema"]["shadow"][name] = torch.full_like(state["ema"]["shadow"][name], float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(state, bad)
    fragment = f"checkpoint '{bad}' has non-finite EMA weights (1 tensors, e.g. {name})"
    assert_user_error(run_cli("abr_tune.evaluate", "--checkpoint", str(bad), "--out", str(tmp_path / "e")), fragment)
    proc = run_cli("abr_tune.sample", "--checkpoint", str(bad), "--age", "30", "--intensity", "80", "--rate", "21.1",
                   "--fmp", "3", "--out", str(tmp_path / "s.npz"))
    assert_user_error(proc, fragment)
    assert not (tmp_path / "s.npz").exists()
