"""A search with several objectives on real Ray: the study, the Pareto front, constraints, the
confirmation's front and re-training a chosen front member.

One tiny search per module: four fixed learning rates (the base config's 2e-3, 3e-3, 1e-3 and a
hopeless 1e-5), no early stopping, three objectives and the constraint val/mse_v <= 0.75, which
the hopeless trial misses; then the winner and the base are confirmed over 2 seeds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import assert_user_error, run_cli, run_search, search_base

from abr_tune.config import load_config

OBJECTIVES = ["val/mse_v", "sample/corr", "sample/detection_acc"]
MODES = ["min", "max", "max"]
HOPELESS = 1e-5


def _dominates(a: list[float], b: list[float]) -> bool:
    """Written here, independently of the package: a is no worse everywhere and better somewhere."""
    signed = [(x, y) if m == "min" else (-x, -y) for x, y, m in zip(a, b, MODES, strict=True)]
    return all(x <= y for x, y in signed) and any(x < y for x, y in signed)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("pareto")
    base = search_base(tmp, sample_every_epochs=10)  # sample metrics on the last epoch only
    lrs = [3e-3, 1e-3, HOPELESS]  # and the base config's 2e-3
    space = {
        "base": base, "num_samples": 4, "max_concurrent": 2,
        "metrics": OBJECTIVES, "constraints": ["val/mse_v <= 0.75"],
        "scheduler": {"max_t": 2, "grace_period": 2},  # every trial runs to max_t
        "search": {"seed": 0, "points_to_evaluate": ["base", *({"optim.lr": lr} for lr in lrs)]},
        "confirm": {"top_k": 1, "seeds": 2},
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-5, "high": 1e-2}},
    }
    exp, proc = run_search(tmp, space, timeout=400)
    return exp, proc.stdout


def _summary(exp: Path) -> dict:
    return json.loads((exp / "search_summary.json").read_text())


@pytest.mark.timeout(600)
def test_the_study_holds_every_objective_at_one_epoch_with_its_constraint(experiment):
    exp, _ = experiment
    summary = _summary(exp)
    study = optuna.load_study(study_name=summary["study"]["study_name"], storage=f"sqlite:///{exp / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE", "MAXIMIZE"]
    by_id = {t["trial_id"]: t for t in summary["trials"]}
    assert len(study.trials) == 4
    for trial in study.trials:
        record = by_id[trial.user_attrs["ray_trial_id"]]
        assert trial.state.name == "COMPLETE" and trial.user_attrs["valued_epoch"] == 2 == record["best_epoch"]
        assert trial.values == pytest.approx([record["objectives"][n] for n in OBJECTIVES])
        # Optuna's constrained samplers read the violation: <= 0 when met
        assert trial.user_attrs["constraints"] == pytest.approx([record["objectives"]["val/mse_v"] - 0.75])
        assert trial.system_attrs["constraints"] == pytest.approx(trial.user_attrs["constraints"])


@pytest.mark.timeout(600)
def test_the_front_is_non_dominated_and_the_constraint_excludes_the_hopeless_trial(experiment):
    exp, stdout = experiment
    summary = _summary(exp)
    searched = summary["pareto_search"]  # the front over the search's trials (before the confirmation)
    points = {t["trial_id"]: [t["objectives"][n] for n in OBJECTIVES] for t in summary["trials"]}
    hopeless = next(t["trial_id"] for t in summary["trials"] if t["params"]["optim.lr"] == pytest.approx(HOPELESS))
    assert points[hopeless][0] > 0.75  # the constraint's premise: it cannot denoise after 2 epochs
    feasible = {k for k, v in points.items() if v[0] <= 0.75}
    assert searched["infeasible"] == [hopeless] and hopeless not in searched["front"]
    assert {r["label"]: r["feasible"] for r in searched["rows"]} == {k: k in feasible for k in points}
    front = set(searched["front"])
    assert front and front <= feasible
    for member in front:  # nothing feasible dominates a member, and every other feasible point is dominated
        assert not any(_dominates(points[k], points[member]) for k in feasible)
    for other in feasible - front:
        assert any(_dominates(points[m], points[other]) for m in front)
    # The rule: the member with the lowest val/mse_v; the ranked output and the front table show it.
    assert searched["chosen"] == min(front, key=lambda k: points[k][0])
    assert "Pareto front from the search's trials" in stdout and f"{searched['chosen']} " in stdout


@pytest.mark.timeout(600)
def test_the_confirmed_front_decides_the_best_config(experiment):
    exp, stdout = experiment
    summary = _summary(exp)
    confirmed = summary["pareto"]
    assert confirmed["source"] == "confirmed"
    reference = next(t for t in summary["trials"] if t["is_reference"])
    others = [m for m in summary["pareto_search"]["front"] if m != reference["trial_id"]]
    # top_k 1 of the front, and the base; a front of the base alone (it dominated every trial) confirms the base
    assert {r["label"] for r in confirmed["rows"]} == {*others[:1], "base"}
    for row in confirmed["rows"]:  # each value the mean over the 2 confirmation seeds
        assert row["seeds"] == 2 and all(math.isfinite(row["values"][n]) for n in OBJECTIVES)
    winner = confirmed["chosen"]
    assert summary["confirmation"]["winner"] == winner
    assert "Pareto front from confirmed means over seeds" in stdout
    best = yaml.safe_load((exp / "best_config.yaml").read_text())
    expected_lr = reference["params"]["optim.lr"] if winner == "base" else \
        next(t for t in summary["trials"] if t["trial_id"] == winner)["params"]["optim.lr"]
    assert best["optim"]["lr"] == pytest.approx(expected_lr)


@pytest.mark.timeout(300)
def test_any_front_member_retrains(experiment):
    exp, _ = experiment
    summary = _summary(exp)
    searched = summary["pareto_search"]
    member = next((m for m in searched["front"] if m != searched["chosen"]), searched["chosen"])
    proc = run_cli("abr_tune.retrain", "--experiment", str(exp), "--trial", member, "--max-epochs", "1",
                   timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = load_config(exp / f"retrain_{member}" / "config.yaml")
    trial = next(t for t in summary["trials"] if t["trial_id"] == member)
    assert cfg.optim.lr == pytest.approx(trial["params"]["optim.lr"])


def test_repeated_metric_flags_make_a_pareto_search_and_bad_constraints_are_refused(tmp_path):
    from abr_tune.hpo.plan import plan_new
    from abr_tune.search import build_parser

    space = {"base": search_base(tmp_path), "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    args = build_parser().parse_args(["--space", str(tmp_path / "space.yaml"), "--storage-path", str(tmp_path),
                                      "--metric", "val/mse_v", "--metric", "sample/detection_acc"])
    exp = plan_new(args)
    assert exp.space.objectives == ["val/mse_v", "sample/detection_acc"] and exp.space.modes == ["min", "max"]
    assert exp.space.metric == "val/mse_v" and exp.space.multi

    for constraint, fragment in [("sample/detection_acc >= 1.5", "must be a finite number in [0, 1]"),
                                 ("sample/detection_acc > 0.5", "must read '<metric> <= <number>'"),
                                 ("val/loss <= 1", "names 'val/loss', which is not reported")]:
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**space, "metrics": OBJECTIVES,
                                                           "constraints": [constraint]}))
        proc = run_cli("abr_tune.search", "--space", str(tmp_path / "bad.yaml"), "--storage-path",
                       str(tmp_path / "runs"), timeout=60)
        assert_user_error(proc, fragment)
    assert not (tmp_path / "runs").exists()


def test_the_confirmed_front_is_made_from_means_over_seeds():
    """Without Ray: the confirmation's runs (per candidate, per seed) -> the front of their means."""
    from abr_tune.hpo.confirm import Candidate
    from abr_tune.hpo.confirm_run import confirmed_front
    from abr_tune.hpo.layout import Experiment
    from abr_tune.hpo.space_file import parse_space

    space = parse_space({"metrics": ["val/mse_v", "sample/wave_v_latency_mae_ms"],
                         "constraints": ["val/mse_v <= 0.6"],
                         "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}})
    exp = Experiment(space, "exp", "/nowhere")
    cands = [Candidate("a", {"optim.lr": 1e-3}), Candidate("b", {"optim.lr": 2e-3}),
             Candidate("c", {"optim.lr": 3e-3}), Candidate("base", {"optim.lr": 5e-3})]
    row = lambda mse, mae: {"val/mse_v": mse, "sample/wave_v_latency_mae_ms": mae}  # noqa: E731
    runs = {"a": {1: row(0.50, 0.9), 2: row(0.52, 0.7)},      # means 0.51, 0.8
            "b": {1: row(0.55, 0.5), 2: row(0.55, 0.7)},      # 0.55, 0.6: on the front (better latency)
            "c": {1: row(0.56, 0.9), 2: row(0.56, 0.9)},      # dominated by a and b
            "base": {1: row(0.70, 0.2), 2: row(0.70, math.inf)}}  # best latency but infeasible; inf: no wave V
    pareto = confirmed_front(exp, cands, runs)
    means = {r["label"]: r["values"] for r in pareto["rows"]}
    assert means["a"] == pytest.approx({"val/mse_v": 0.51, "sample/wave_v_latency_mae_ms": 0.8})
    assert means["base"]["sample/wave_v_latency_mae_ms"] == math.inf
    assert pareto["source"] == "confirmed" and pareto["infeasible"] == ["base"]
    assert pareto["front"] == ["a", "b"] and pareto["chosen"] == "a"
