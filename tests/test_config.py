"""Config: YAML loading, overrides, validation with helpful messages, round-trip."""

from pathlib import Path

import pytest
import yaml

from abr_tune.config import (
    TrainConfig,
    all_keys,
    from_dict,
    load_config,
    parse_overrides,
)
from abr_tune.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_train_yaml_has_the_original_full_size_defaults():
    cfg = load_config(ROOT / "configs/train.yaml")
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads, cfg.model.ff_mult) == (256, 6, 8, 4)
    assert cfg.model.dropout == 0.1 and cfg.model.sequence_length == 200
    assert (cfg.diffusion.num_train_steps, cfg.diffusion.sample_steps, cfg.diffusion.cfg_scale) == (1000, 60, 1.0)
    assert cfg.optim.lr == 1e-4 and cfg.optim.betas == [0.9, 0.99] and cfg.optim.weight_decay == 1e-5
    assert cfg.optim.ema_decay == 0.999 and cfg.optim.amp is True and cfg.optim.grad_clip == 1.0
    assert cfg.loss.stft_weight == 0.15 and (cfg.loss.stft.n_fft, cfg.loss.stft.hop_length) == (64, 16)
    assert cfg.loader.batch_size == 32
    t = cfg.trainer
    assert (t.max_epochs, t.sample_every_epochs, t.save_every_epochs, t.keep_last_k, t.early_stop_patience) == (
        100, 2, 5, 5, 20)
    assert cfg.advanced.cfg_dropout_prob == 0.1 and cfg.advanced.lr_warmup_steps == 1000


def test_every_shipped_config_loads():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        assert isinstance(load_config(path), TrainConfig), path


def test_overrides_parse_values_as_yaml():
    cfg = load_config(ROOT / "configs/train.yaml", "optim.lr: 3e-4, trainer.max_epochs: 300, optim.amp: false")
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.trainer.max_epochs == 300 and cfg.optim.amp is False
    assert parse_overrides("optim.betas: [0.8, 0.9]") == {"optim.betas": [0.8, 0.9]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"optim": {"lrr": 1e-3}}, "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
        ({"model": {"n_head": 4}}, "did you mean 'model.n_heads'?"),
        ({"trainr": {}}, "did you mean 'trainer"),
        ({"loader": {"num_workers": 4}}, "'loader.num_workers' is not used"),
        ({"optim": {"lr": "fast"}}, "'optim.lr' must be of type float"),
        ({"trainer": {"max_epochs": 2.5}}, "'trainer.max_epochs' must be of type int"),
        ({"trainer": {"max_epochs": 0}}, "trainer.max_epochs must be >= 1"),
        ({"loader": {"batch_size": -1}}, "loader.batch_size must be >= 1"),
        ({"model": {"d_model": 64, "n_heads": 5}}, "model.n_heads (5) must divide model.d_model (64)"),
        ({"model": {"sequence_length": 199}}, "sequence_length must be 200"),
        ({"device": "tpu"}, "allowed values: 'auto', 'cpu', 'cuda'"),
        ({"data": {"split": [0.5, 0.2, 0.2]}}, "data.split must be three ratios"),
        ({"data": {"source": "file"}}, "data.path is empty"),
        ({"optim": "fast"}, "'optim' must be a mapping"),
    ],
)
def test_bad_configs_name_the_problem(raw, message):
    with pytest.raises(UserError) as err:
        from_dict(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_override_key_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean 'trainer.max_epochs'"):
        load_config(None, "trainer.max_epoch: 3")


def test_yaml_errors_and_unsafe_tags_are_user_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [1e-4\n")
    with pytest.raises(UserError, match="is not valid YAML at line"):
        load_config(bad)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(unsafe)
    with pytest.raises(UserError, match="file not found"):
        load_config(tmp_path / "missing.yaml")


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(ROOT / "configs/cpu.yaml", "optim.lr: 0.002")
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg
    assert set(all_keys()) >= {"optim.lr", "loss.stft.n_fft", "data.synthetic.seed"}
    assert yaml.safe_load(cfg.to_yaml())["optim"]["lr"] == 0.002
