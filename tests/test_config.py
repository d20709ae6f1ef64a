"""Config: YAML loading, overrides, validation with helpful messages, round-trip."""

import time
from pathlib import Path

import pytest
import yaml

from abr_tune.config import (
    TrainConfig,
    all_keys,
    from_dict,
    load_config,
    load_yaml,
    parse_overrides,
)
from abr_tune.errors import UserError, UserErrors, fail

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
        ({"model": {"use_static_film": False}}, "'model.use_static_film: false' is not supported"),
        ({"performance": {"distributed": True}}, "'performance.distributed: true' is not supported"),
        ({"loader": {"num_worker": 4}}, "did you mean 'loader.num_workers'?"),
        ({"optim": {"lr": float("nan")}}, "'optim.lr' must be a finite number"),
        ({"diffusion": {"cfg_scale": float("inf")}}, "'diffusion.cfg_scale' must be a finite number"),
        ({"diffusion": {"ddim_eta": 1.5}}, "diffusion.ddim_eta must be in [0, 1]"),
        ({"exp_name": "../escape"}, "exp_name must be a plain name"),
        ({"exp_name": ""}, "exp_name must be a plain name"),
        ({"exp_name": "run[1]"}, "e.g. exp_name: run_1"),
        ({"exp_name": "a/b"}, "exp_name must be a plain name"),
        ({"data": {"train_ratio": 0.7, "val_ratio": 0.2, "test_ratio": 0.2}}, "must sum to 1, got 1.1"),
        ({"data": {"train_csv": "a.pkl", "val_csv": "b.pkl"}}, "abr-tune validates on a patient-level split"),
        ({"data": {"columns": {"agee": "Patient Age"}}}, "data.columns names ['agee']"),
        ({"reproducibility": {"deterministic": True, "benchmark": True}}, "set benchmark: false"),
        ({"logging": {"console_log_level": "LOUD"}}, "allowed values: DEBUG, INFO"),
        ({"data": {"split_seed": -1}}, "data.split_seed must be in [0, 4294967295]"),
        ({"data": {"synthetic": {"n_subjects": 10**7}}}, "at most 2,000,000 fit in memory"),
        ({"optim": {"lr": 10**400}}, "'optim.lr' must be a finite number"),
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


# ---------------------------------------------------------------- every problem at once

def test_several_problems_are_reported_together():
    with pytest.raises(UserErrors) as err:
        from_dict({"optim": {"lrr": 1e-3, "lr": -1.0}, "trainer": {"max_epochs": 2.5}, "device": "tpu"})
    problems = err.value.problems
    assert str(err.value).startswith("4 problems in the config:\n  ")
    assert len(problems) == 4 and all("\n" not in p for p in problems)
    for fragment in ("did you mean 'optim.lr'?", "'trainer.max_epochs' must be of type int", "allowed values: 'auto'",
                     "optim.lr must be in (0, 1], got -1"):
        assert sum(fragment in p for p in problems) == 1, fragment


def test_fail_prints_a_header_and_one_indented_line_per_problem(capsys):
    with pytest.raises(SystemExit) as exit_:
        fail(UserErrors("2 problems in c.yaml:", ["first\n  wrapped", "second"]))
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["abr-tune: error: 2 problems in c.yaml:", "  first wrapped",
                                                    "  second"]


def test_override_problems_join_the_file_problems(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  max_epochs: 0\n")
    with pytest.raises(UserErrors, match=f"2 problems in {path}:") as err:
        load_config(path, "optim.lrr: 1")
    assert "did you mean 'optim.lr'" in err.value.problems[0]


# ---------------------------------------------------------------- the original pipeline's keys

def test_original_keys_are_read_as_abr_tune_keys_and_named_once(tmp_path, capsys):
    path = tmp_path / "orig.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"train_csv": "clinic.pkl", "val_csv": "./clinic.pkl", "static_order": ["Age", "Intensity",
                 "Stimulus Rate", "FMP"], "train_ratio": 0.8, "val_ratio": 0.1, "test_ratio": 0.1},
        "loader": {"num_workers": 4}, "trainer": {"num_sample_plots": 6, "num_val_plots": 3},
        "viz": {"max_waveform_plots": 5}, "advanced": {"lr_scheduler": "linear"},
        "performance": {"distributed": False}}))
    cfg = load_config(path)
    assert (cfg.data.source, cfg.data.path, cfg.data.split) == ("file", "clinic.pkl", [0.8, 0.1, 0.1])
    assert cfg.data.static_order == ["age", "intensity", "rate", "fmp"]
    assert (cfg.viz.num_samples, cfg.viz.num_reference_plots) == (5, 3)
    assert cfg.advanced.lr_scheduler == "linear"
    err = capsys.readouterr().err
    assert err.count("abr-tune: notice:") == 1 and f"in {path} have no effect here" in err
    for key in ("loader.num_workers", "performance.distributed", "data.val_csv"):
        assert err.count(f"  {key}: ") == 1, key
    assert "data.train_csv as data.path" in err
    assert "train_csv" not in cfg.to_yaml() and "performance" not in cfg.to_yaml()  # what ran
    assert load_config(None, "performance.pin_memory: true").loader == load_config(None).loader
    with pytest.raises(UserError, match="did you mean 'performance.pin_memory'"):
        load_config(None, "performance.pin_memry: true")


def test_linear_lr_schedule_decays_to_the_floor():
    from abr_tune.training.state import lr_multiplier

    cfg = from_dict({"advanced": {"lr_scheduler": "linear", "lr_warmup_steps": 10, "min_lr_ratio": 0.1}})
    m = lr_multiplier(cfg, total_steps=110)
    assert [round(m(s), 6) for s in (0, 9, 10, 60, 110, 500)] == [0.1, 1.0, 1.0, 0.55, 0.1, 0.1]


def test_device_cuda_falls_back_to_the_cpu_with_a_notice(monkeypatch, capsys):
    import torch

    from abr_tune.training.state import _device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = from_dict({"device": "cuda"})
    assert _device(cfg).type == "cpu" and cfg.device == "cpu"  # config.yaml then records what ran
    assert "no CUDA GPU is visible: training on the CPU" in capsys.readouterr().err


# ---------------------------------------------------------------- nested aliases ("billion laughs")

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))


def test_a_billion_laughs_config_is_refused_at_once(tmp_path):
    from abr_tune.hpo.space_file import load_space

    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS.replace("i: &i", "optim: &i"))  # 9^9 values under one key
    started = time.perf_counter()
    with pytest.raises(UserError, match="aliases expand it to more than 100,000 values"):
        load_config(path)
    with pytest.raises(UserError, match="billion laughs"):
        load_space(path)
    with pytest.raises(UserError, match="--override is refused"):
        load_config(None, BILLION_LAUGHS.replace("\n", ", ").rstrip(", "))
    assert time.perf_counter() - started < 3.0
    path.write_text("base: &b {optim: {lr: 0.001}}\nsame: *b\n")  # a few aliases are fine
    assert yaml.safe_load(path.read_text())["same"] == {"optim": {"lr": 0.001}}
    assert load_yaml(path)["same"] == {"optim": {"lr": 0.001}}
