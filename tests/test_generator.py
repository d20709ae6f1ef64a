"""The Generator and the normaliser's trained range: what a checkpoint needs, bounded batches, range warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY

from abr_tune.config import from_dict
from abr_tune.data import Normaliser, prepare_splits
from abr_tune.errors import UserError
from abr_tune.model import EMA, Generator, build_model, generate_uv
from abr_tune.model import generator as generator_module


def make_checkpoint(path, drop: tuple[str, ...] = ()) -> str:
    """An untrained tiny model saved as a training checkpoint would be (no training: seconds faster)."""
    cfg = from_dict(TINY)
    model = build_model(cfg, None, torch.device("cpu"))
    splits = prepare_splits(cfg.data)
    state = {"model": model.state_dict(), "ema": EMA(model, 0.9).state_dict(), "config": cfg.to_dict(),
             "normaliser": splits.normaliser.state_dict(), "epoch": 1}
    torch.save({k: v for k, v in state.items() if k not in drop}, path)
    return str(path)


def test_normaliser_keeps_the_train_range_and_reads_old_states_without_it():
    static = np.array([[0.5, 20, 11.1, 0.0], [70.0, 90, 49.1, 800.0], [3.0, 60, 21.1, 2.0]], dtype=np.float32)
    norm = Normaliser.fit(np.zeros((3, 200)), static)
    assert norm.static_min == [0.5, 20.0, pytest.approx(11.1), 0.0]
    assert norm.static_max == [70.0, 90.0, pytest.approx(49.1), 800.0]
    assert Normaliser.from_state_dict(norm.state_dict()) == norm
    assert norm.untrained(static) == []
    assert norm.untrained(np.array([[100.0, 60, 21.1, 2]])) == [
        "age 100 years is outside the range the model was trained on, [0.5, 70] years; it extrapolates there"]
    many = norm.untrained(np.array([[30.0, 95, 21.1, 2], [30.0, 130, 21.1, 2], [30.0, 10, 21.1, 2]]))
    assert many == ["3 of 3 conditions have intensity outside the range the model was trained on, [20, 90] dB nHL "
                    "(1 below it, down to 10; 2 above it, up to 130); it extrapolates there"]
    old = {k: v for k, v in norm.state_dict().items() if k not in ("static_min", "static_max")}
    assert Normaliser.from_state_dict(old).untrained(np.array([[100.0, 130, 21.1, 2]])) == []  # nothing known


@pytest.mark.parametrize(("change", "fragment"), [
    ({"static_std": None}, "normaliser is incomplete or malformed"),
    ({"signal_std": float("nan")}, "non-finite, zero or misshapen"),
    ({"static_mean": [0.0, 1.0]}, "non-finite, zero or misshapen"),
    ({"static_min": [0.0]}, "normaliser is incomplete or malformed"),
])
def test_a_broken_normaliser_is_a_user_error(change, fragment):
    state = Normaliser.fit(np.zeros((2, 200)), np.ones((2, 4))).state_dict()
    state.update(change)
    state = {k: v for k, v in state.items() if v is not None}
    with pytest.raises(UserError, match=fragment):
        Normaliser.from_state_dict(state)


@pytest.mark.parametrize(("drop", "named"), [(("ema",), "lacks ema \\("), (("normaliser",), "lacks normaliser \\("),
                                             (("ema", "normaliser"), "lacks ema, normaliser \\(")])
def test_a_checkpoint_without_ema_or_normaliser_is_refused_by_name(tmp_path, drop, named):
    path = make_checkpoint(tmp_path / "c.pt", drop)
    with pytest.raises(UserError, match=named) as err:
        Generator.from_checkpoint(path)
    assert str(tmp_path / "c.pt") in str(err.value)


def test_ema_that_does_not_fit_the_model_is_a_user_error(tmp_path):
    path = make_checkpoint(tmp_path / "c.pt")
    state = torch.load(path, weights_only=True)
    state["ema"] = {"num_updates": 3}  # no shadow weights
    with pytest.raises(UserError, match="ema does not fit its model"):
        Generator.from_checkpoint(state)


def test_generate_runs_in_bounded_batches_with_progress(tmp_path, monkeypatch):
    monkeypatch.setattr(generator_module, "GENERATE_BATCH", 4)
    gen = Generator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"), sample_steps=2)
    raw = np.array([[30.0, 80, 21.1, 3], [1.0, 40, 21.1, 1]], dtype=np.float32)
    done: list[int] = []
    out = gen.generate(raw, repeats=5, cfg_scale=1.5, seed=7, progress=done.append)
    assert out.shape == (5, 2, 200) and out.dtype == np.float32 and np.isfinite(out).all()
    assert done == [4, 4, 2]  # ten waveforms, never more than one batch of four at once
    tiled = gen.encode(raw).repeat(5, 1)
    by_batch = [generate_uv(gen.model, gen.schedule, tiled[lo : lo + 4], gen.cfg, gen.normaliser, 7 + i,
                            gen.autocast, cfg_scale=1.5) for i, lo in enumerate(range(0, 10, 4))]
    np.testing.assert_array_equal(out.reshape(10, 200), np.concatenate(by_batch))  # batch i seeded seed + i


def test_series_noise_correlates_rows_of_a_series_by_rho_and_nothing_else():
    series = np.repeat(np.array(["a", "b"]), 200)  # two series of 200 rows
    for rho in (0.0, 0.4, 1.0):
        x = generator_module.series_noise(series, repeats=3, length=4000, rho=rho, seed=1)
        assert x.shape == (3, 400, 4000) and x.std() == pytest.approx(1.0, abs=0.01)
        within = np.corrcoef(x[0, 0], x[0, 1])[0, 1]
        across = np.corrcoef(x[0, 0], x[0, 200])[0, 1]  # another series
        draws = np.corrcoef(x[0, 0], x[1, 0])[0, 1]  # the same row in another draw
        assert within == pytest.approx(rho, abs=0.05) and abs(across) < 0.05 and abs(draws) < 0.05
    with pytest.raises(ValueError, match="rho"):
        generator_module.series_noise(series, 1, 10, 1.5)


def test_generate_starts_from_the_given_noise(tmp_path):
    gen = Generator.from_checkpoint(make_checkpoint(tmp_path / "c.pt"), sample_steps=2)
    raw = np.array([[30.0, 80, 21.1, 3], [1.0, 40, 21.1, 1]], dtype=np.float32)
    x_T = generator_module.series_noise(np.array(["s", "s"]), 2, 200, rho=1.0, seed=3)
    out = gen.generate(raw, repeats=2, seed=0, x_T=x_T)
    again = gen.generate(raw, repeats=2, seed=99, x_T=x_T)  # the seed no longer matters
    np.testing.assert_array_equal(out, again)
    assert not np.allclose(out, gen.generate(raw, repeats=2, seed=0))
