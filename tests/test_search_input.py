"""Search input refused in one line before Ray starts: a key written twice, an unbounded model size,
a --name too long for a file name, --warm-start-top 0, a leftover directory of a killed start."""

from __future__ import annotations

import pytest
import yaml
from conftest import assert_user_error, run_cli, search_base

RANGE = {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}


def _space(tmp_path, params=None, text: str | None = None):
    path = tmp_path / "space.yaml"
    body = {"base": search_base(tmp_path), "num_samples": 2, "params": params or RANGE}
    path.write_text(text if text is not None else yaml.safe_dump(body, sort_keys=False))
    return path


def _search(*args: str):
    return run_cli("abr_tune.search", *args, timeout=120)


def test_a_key_written_twice_in_a_space_file_is_refused(tmp_path):
    text = yaml.safe_dump({"base": search_base(tmp_path), "num_samples": 2}, sort_keys=False) + (
        "params:\n  optim.lr: {dist: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
        "  optim.lr: {dist: loguniform, low: 1.0e-5, high: 1.0e-3}\n")
    path = _space(tmp_path, text=text)
    line = len(text.splitlines())
    assert_user_error(_search("--space", str(path), "--storage-path", str(tmp_path / "runs")),
                      f"key 'optim.lr' appears twice (lines {line - 1} and {line}); keep one")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key, high, limit", [("model.n_layers", "1e20", 48), ("model.d_model", "65536", 1024)])
def test_a_searched_model_size_is_bounded(tmp_path, key, high, limit):
    params = {key: {"dist": "int", "low": 32 if key == "model.d_model" else 1, "high": float(high)}}
    if key == "model.d_model":
        params[key]["q"] = 32
    path = _space(tmp_path, params)
    proc = _search("--space", str(path), "--storage-path", str(tmp_path / "runs"))
    assert_user_error(proc, f"exceeds {limit}, the largest a search may propose")


def test_flags_out_of_range_and_a_leftover_directory(tmp_path):
    path = _space(tmp_path)
    runs = tmp_path / "runs"
    assert_user_error(_search("--space", str(path), "--storage-path", str(runs), "--name", "n" * 300),
                      "--name is 300 bytes long; give at most 100")
    assert_user_error(_search("--space", str(path), "--storage-path", str(runs), "--warm-start", str(tmp_path),
                              "--warm-start-top", "0"), "--warm-start-top must be between 1 and 100, got 0")
    (runs / "left").mkdir(parents=True)  # what a kill right after the directory was created leaves
    assert_user_error(_search("--space", str(path), "--storage-path", str(runs), "--name", "left"),
                      "already exists; pass --resume")
    proc = _search("--resume", str(runs / "left"))  # which then says why it cannot, and what to do
    assert_user_error(proc, "is not an abr-tune search experiment yet (no space.yaml): a search was stopped")
    assert "remove the directory and start the search again with --space" in proc.stderr
    assert list((runs / "left").iterdir()) == []
