"""Search-space YAML: parsing, validation before Ray starts, the define-by-run space."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from abr_tune.config import from_dict, load_config
from abr_tune.errors import UserError
from abr_tune.hpo.space_file import load_space, parse_space

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
LR = {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 3e-3}}
BASE = {"model": {"d_model": 64, "n_heads": 4}}


def _space(**fields):
    raw = {"base": BASE, "params": LR, **fields}
    return parse_space(raw)


def _checked(**fields):
    space = _space(**fields)
    space.check(space.base_raw())
    return space


def _trials(space, n, seed=0):
    """n define-by-run proposals from a random sampler, as Optuna params dicts."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space.bind(from_dict(space.base_raw()))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        space.define_by_run(trial)
        out.append(trial.params)
    return out


def test_shipped_spaces_are_valid_and_name_the_base_first():
    assert {p.stem for p in SPACES} >= {"lr_stft", "architecture", "training"}
    for path in SPACES:
        space = load_space(path)
        base = space.base_raw()
        assert space.check(base) >= 64
        assert space.search.points_to_evaluate[0] == "base"
        point = space.points_to_evaluate(from_dict(base))[0]
        cfg = space.trial_config(base, point)
        assert cfg == from_dict(base), f"{path.name}: the 'base' point must reproduce the base config"


def test_architecture_space_only_proposes_valid_width_head_pairs():
    space = load_space(ROOT / "search_spaces" / "architecture.yaml")
    base = space.base_raw()
    seen = set()
    for params in _trials(space, 200):
        cfg = space.trial_config(base, params)
        assert cfg.model.d_model % cfg.model.n_heads == 0
        seen.add((cfg.model.d_model, cfg.model.n_heads))
    assert len(seen) == 8  # every listed pair gets proposed


def test_conditional_param_is_sampled_only_when_its_condition_holds():
    space = load_space(ROOT / "search_spaces" / "lr_stft.yaml")
    joint = "loss.stft.n_fft,loss.stft.win_length,loss.stft.hop_length"
    trials = _trials(space, 120, seed=1)
    assert {joint in t for t in trials} == {True, False}
    for t in trials:
        assert (joint in t) == (t["loss.stft_weight"] > 0.05)
        if joint in t:
            overrides = space.resolve(t)
            assert overrides["loss.stft.n_fft"] in (32, 64)
            assert overrides["loss.stft.win_length"] == overrides["loss.stft.n_fft"]


def test_condition_on_a_key_that_is_not_searched_reads_the_base():
    params = {**LR, "loss.stft.n_fft": {"dist": "choice", "values": [32, 64], "when": "loss.stft_weight > 0.2"}}
    space = parse_space({"base": {"loss": {"stft": {"win_length": 32}}}, "params": params})
    assert all("loss.stft.n_fft" not in t for t in _trials(space, 20))  # base stft_weight is 0.15
    hot = parse_space({"base": {"loss": {"stft_weight": 0.3, "stft": {"win_length": 32}}}, "params": params})
    assert all("loss.stft.n_fft" in t for t in _trials(hot, 20))


def test_resolve_rounds_quantised_values_and_decodes_labels():
    space = parse_space({"params": {
        "optim.weight_decay": {"dist": "qloguniform", "low": 1e-5, "high": 1e-3, "q": 1e-5},
        "advanced.lr_warmup_steps": {"dist": "int", "low": 0, "high": 200, "q": 50},
        "model.dropout": {"dist": "quniform", "low": 0.0, "high": 0.2, "q": 0.05},
        "optim.betas": {"dist": "choice", "values": [[0.9, 0.99], [0.9, 0.999]]},
    }})
    for t in _trials(space, 50):
        o = space.resolve(t)
        assert abs(o["optim.weight_decay"] / 1e-5 - round(o["optim.weight_decay"] / 1e-5)) < 1e-6
        assert o["advanced.lr_warmup_steps"] in (0, 50, 100, 150, 200)
        assert round(o["model.dropout"] / 0.05, 9).is_integer()
        assert o["optim.betas"] in ([0.9, 0.99], [0.9, 0.999])


def test_points_to_evaluate_are_encoded_and_checked():
    space = _space(params={**LR, "model.d_model,model.n_heads": {"dist": "choice", "values": [[64, 4], [128, 8]]}},
                   search={"points_to_evaluate": ["base", {"optim.lr": 2e-3, "model.d_model,model.n_heads": [128, 8]}]})
    points = space.points_to_evaluate(from_dict(space.base_raw()))
    assert points[0] == {"optim.lr": 1e-4, "model.d_model,model.n_heads": "[64, 4]"}
    assert space.resolve(points[1]) == {"optim.lr": 2e-3, "model.d_model": 128, "model.n_heads": 8}


def test_resolved_space_round_trips_through_yaml(tmp_path):
    space = load_space(ROOT / "search_spaces" / "lr_stft.yaml")
    raw = space.to_dict()
    raw.pop("base_config")
    inline = parse_space({**raw, "base": space.base_raw()})
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(inline.to_dict(), sort_keys=False))
    again = load_space(path)
    assert again.params == space.params
    assert from_dict(again.base_raw()) == from_dict(space.base_raw())
    assert load_config(ROOT / "configs" / "cpu.yaml").model == from_dict(again.base_raw()).model


BAD_SPACES = [
    ({"parms": LR}, "unknown search space field 'parms' (did you mean 'params'?)"),
    ({"params": {}}, "search space has no params"),
    ({"params": {"optim.lrr": {"dist": "uniform", "low": 0, "high": 1}}}, "did you mean 'optim.lr'"),
    ({"params": {"optim.lr": {"dist": "gaussian", "low": 0, "high": 1}}}, "unknown dist 'gaussian'"),
    ({"params": {"optim.lr": {"dist": "uniform", "low": 1e-3, "high": 1e-3}}}, "low (0.001) must be < high"),
    ({"params": {"optim.lr": {"dist": "loguniform", "low": 0.0, "high": 1e-3}}}, "a log range needs low > 0"),
    ({"params": {"optim.lr": {"dist": "loguniform", "lo": 1e-4, "high": 1e-3}}}, "unknown field of params.optim.lr"),
    ({"params": {"model.n_layers": {"dist": "int", "low": 1.5, "high": 4}}}, "int bounds must be integers"),
    ({"params": {"model.n_layers": {"dist": "uniform", "low": 1, "high": 4}}}, "is an integer; use dist int"),
    ({"params": {"model.n_heads": {"dist": "choice", "values": []}}}, "a choice needs a non-empty list of values"),
    ({"params": {"model.n_heads": {"dist": "choice", "values": [3, 4]}}}, "must divide model.d_model"),
    ({"params": {"model.d_model": {"dist": "choice", "values": [64, 100]}, "model.n_heads": {
        "dist": "choice", "values": [4, 8]}}}, "model.n_heads (8) must divide model.d_model (100)"),
    ({"params": {"model.d_model,model.n_heads": {"dist": "choice", "values": [[64, 4], [64]]}}},
     "each value of a joint choice must list 2 values"),
    ({"params": {"trainer.max_epochs": {"dist": "int", "low": 1, "high": 9}}}, "set scheduler.max_t"),
    ({"params": {"model.dropout": {"dist": "quniform", "low": 0, "high": 0.2}}}, "quniform needs a step q > 0"),
    ({"params": {**LR, "loss.stft_weight": {"dist": "uniform", "low": 0, "high": 1, "when": "optim.lr >> 1"}}},
     "cannot read when"),
    ({"params": {"loss.stft.n_fft": {"dist": "choice", "values": [32], "when": "loss.stft_weight > 0"},
                 "loss.stft_weight": {"dist": "uniform", "low": 0, "high": 1}}}, "not a param declared before it"),
    ({"params": LR, "metric": "sample/nonsense"}, "is not reported every epoch"),
    ({"params": LR, "metric": "sample/corr"}, "improves when it goes up; set mode: max"),
    ({"params": LR, "metric": "sample/c2st_acc", "mode": "max"}, "improves when it goes down; set mode: min"),
    ({"params": LR, "mode": "minimum"}, "mode is 'minimum'; allowed: min, max"),
    ({"params": LR, "scheduler": {"max_t": 2, "grace_period": 3}}, "grace_period (3) must be <= max_t (2)"),
    ({"params": LR, "scheduler": {"max_t": "ten"}}, "scheduler.max_t must be of type int"),
    ({"params": LR, "search": {"points_to_evaluate": [{"optim.lr": 1.0}]}}, "optim.lr=1.0 is outside"),
    ({"params": LR, "search": {"points_to_evaluate": [{"optim.lrr": 1e-3}]}}, "'optim.lrr' is not a param"),
    ({"params": {"advanced.lr_warmup_steps": {"dist": "int", "low": 0, "high": 200, "q": 25}},
      "search": {"points_to_evaluate": ["base"]}}, "advanced.lr_warmup_steps=1000 is outside [0, 200]"),
    ({"params": {"advanced.lr_warmup_steps": {"dist": "int", "low": 0, "high": 200, "q": 25}},
      "search": {"points_to_evaluate": [{"advanced.lr_warmup_steps": 60}]}}, "is not on its grid"),
    ({"params": LR, "base_config": "no/such.yaml"}, "base_config 'no/such.yaml' not found"),
    # a step that leaves one value: the search would try the same config every time
    ({"params": {"model.n_layers": {"dist": "int", "low": 1, "high": 3, "q": 5}}},
     "the step q (5) exceeds the range high - low (2), so only one value would be searched"),
    ({"params": {"optim.lr": {"dist": "qloguniform", "low": 1e-3, "high": 1.5e-3, "q": 1e-3}}},
     "the step q (0.001) exceeds the range high - low (0.0005)"),
    # conditions compare numbers: a string, list or unset key would crash every trial's sampling
    ({"params": {**LR, "loss.stft_weight": {"dist": "uniform", "low": 0, "high": 1, "when": "optim.amp_dtype > 0"}}},
     "reads 'optim.amp_dtype', which can be 'bf16', not a number"),
    ({"params": {**LR, "loss.stft_weight": {"dist": "uniform", "low": 0, "high": 1, "when": "data.path > 0"}}},
     "reads 'data.path', which can be None, not a number"),
    ({"params": {**LR, "loss.stft_weight": {"dist": "uniform", "low": 0, "high": 1, "when": "optim.betas > 0"}}},
     "reads 'optim.betas', which can be [0.9, 0.99], not a number"),
    ({"params": {"optim.amp_dtype": {"dist": "choice", "values": ["bf16", "fp16"]},
                 "loss.stft_weight": {"dist": "uniform", "low": 0, "high": 1, "when": "optim.amp_dtype == 1"}}},
     "reads 'optim.amp_dtype', which can be 'bf16', not a number"),
    # a fixed value for a searched key would be replaced in every trial
    ({"params": LR, "overrides": {"optim.lr": 1e-3}},
     "overrides sets 'optim.lr', which is searched by the space; remove it from overrides or from params"),
    ({"params": LR, "overrides": {"model.widht": 3}}, "unknown config key 'model.widht'"),
]


@pytest.mark.parametrize(("raw", "fragment"), BAD_SPACES, ids=[str(i) for i in range(len(BAD_SPACES))])
def test_bad_spaces_are_rejected_with_one_clear_line(raw, fragment):
    with pytest.raises(UserError) as err:
        space = parse_space(raw if "base_config" in raw else {"base": BASE, **raw})
        space.check(space.base_raw())
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_malformed_yaml_is_a_user_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("params:\n  optim.lr: {dist: uniform, low: 0\n")
    with pytest.raises(UserError, match="is not valid YAML"):
        load_space(path)


def test_base_config_resolves_relative_to_the_space_file(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "small.yaml").write_text("model: {d_model: 48, n_heads: 4}\n")
    (tmp_path / "spaces").mkdir()
    path = tmp_path / "spaces" / "s.yaml"
    path.write_text(yaml.safe_dump({"base_config": "../configs/small.yaml", "params": LR}))
    assert from_dict(load_space(path).base_raw()).model.d_model == 48


def test_a_sample_metric_that_drives_asha_is_sampled_on_its_rungs(tmp_path):
    import dataclasses

    from conftest import tiny_config

    from abr_tune.hpo.trial import trial_overrides
    from abr_tune.training import train_abr

    space = _space(params=LR)
    assert "trainer.sample_epochs" not in trial_overrides(space, tmp_path)  # val/mse_v: no extra sampling
    latency = dataclasses.replace(space, metric="sample/wave_v_latency_mae_ms",
                                  scheduler=dataclasses.replace(space.scheduler, max_t=10, grace_period=2))
    assert trial_overrides(latency, tmp_path)["trainer.sample_epochs"] == [2, 4, 8]  # ASHA's rungs
    # train_abr samples on those epochs, every sample_every_epochs and on the last one, nowhere else
    raw = tiny_config(tmp_path, trainer={"max_epochs": 4, "sample_every_epochs": 100, "sample_epochs": [2]})
    summary = train_abr(raw)
    assert [h["epoch"] for h in summary["history"] if "sample/corr" in h] == [2, 4]


def test_conditions_on_numeric_choices_and_bools_are_accepted():
    joint = {"model.d_model,model.n_heads": {"dist": "choice", "values": [[64, 4], [128, 8]]},
             "loss.stft_weight": {"dist": "uniform", "low": 0, "high": 1, "when": "model.n_heads > 4"},
             "optim.weight_decay": {"dist": "uniform", "low": 0, "high": 0.1, "when": "optim.amp == 1"}}
    space = _checked(params=joint)
    trials = _trials(space, 40)
    assert {("loss.stft_weight" in t) == (t["model.d_model,model.n_heads"] == "[128, 8]") for t in trials} == {True}
    assert all("optim.weight_decay" in t for t in trials)  # optim.amp defaults to true: 1

