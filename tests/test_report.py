"""The search report on a real, tiny finished search.

One search runs per module through the CLI: 4 fixed trials of the conftest tiny model (the
base config, one that diverges, one that hardly learns, one more), ASHA with rungs at epochs 1 and 2.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
import pytest
from conftest import assert_user_error, run_cli, run_search, search_base

from abr_tune.hpo.report.figures import asha_rungs
from abr_tune.hpo.report.importance import study_importance
from abr_tune.hpo.space_file import parse_space
from abr_tune.report import INDEX_HTML, REPORT_DIR, SUMMARY_MD, main, write_report

FIGURES = ("learning_curves.png", "params_vs_metric.png", "param_importance.png", "best_trial_samples.png")
DATA_URI = 'src="data:image/png;base64,'


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A finished search: lr and stft_weight searched, one trial diverges (lr = 1), one hardly learns."""
    tmp = tmp_path_factory.mktemp("search")
    space = {
        "base": search_base(tmp, sample_every_epochs=3), "num_samples": 4, "max_concurrent": 2,
        "scheduler": {"max_t": 3, "grace_period": 1, "reduction_factor": 2},
        "search": {"seed": 0, "n_startup_trials": 5, "points_to_evaluate": [  # every trial fixed: no luck involved
            "base", {"optim.lr": 1.0, "loss.stft_weight": 0.1},
            {"optim.lr": 5e-3, "loss.stft_weight": 0.05}, {"optim.lr": 1e-5, "loss.stft_weight": 0.25}]},
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-5, "high": 1.0},
                   "loss.stft_weight": {"dist": "uniform", "low": 0.0, "high": 0.3}},
    }
    return run_search(tmp, space, timeout=170)[0]


def _image_sources(page: str) -> list[str]:
    return re.findall(r'src="([^"]*)"', page)


def _markdown_links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", text)


@pytest.mark.timeout(240)
def test_report_command_writes_every_promised_file(experiment):
    proc = run_cli("abr_tune.report", str(experiment), "--conditions", "4", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = experiment / REPORT_DIR
    for name in (SUMMARY_MD, INDEX_HTML, *FIGURES):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "sampling 4 conditions" in proc.stdout and "skipped" not in proc.stdout  # progress, nothing skipped

    page = (out / INDEX_HTML).read_text()
    sources = _image_sources(page)
    assert len(sources) == len(FIGURES) and page.count(DATA_URI) == len(FIGURES)
    assert not re.findall(r'href="([^"#][^"]*)"', page)  # self-contained: no links to other files
    md = (out / SUMMARY_MD).read_text()
    links = _markdown_links(md)
    assert sorted(links) == sorted(FIGURES) and all((out / link).is_file() for link in links)

    summary = json.loads((experiment / "search_summary.json").read_text())
    best = summary["best"]
    assert f"**Best trial `{best['trial_id']}`**" in md
    assert "Trials: 4 run of 4:" in md and "1 diverged" in md  # the lr = 1 trial
    assert f"python -m abr_tune.retrain --experiment {experiment}" in md
    assert "| `optim.lr` |" in md and "searched" in md  # the best config's diff against the base
    assert "ASHA on epochs: max_t 3, grace_period 1, reduction_factor 2 (rungs at epoch 1, 2)" in md
    assert "fANOVA" in md or "PED-ANOVA" in md
    for text in (md, page):  # every trial appears in the top table
        assert all(t["trial_id"] in text for t in summary["trials"])


@pytest.mark.timeout(120)
def test_too_few_completed_trials_skip_importance_with_a_note(experiment, tmp_path, capsys):
    """Two of four trials fail: two completed trials are too few for importance, not a crash."""
    copy = tmp_path / "moved"  # a copied experiment: the summary's absolute paths point elsewhere
    shutil.copytree(experiment, copy, ignore=shutil.ignore_patterns(REPORT_DIR))
    summary = json.loads((copy / "search_summary.json").read_text())
    for t in summary["trials"][2:]:
        t["status"] = "error: RuntimeError: worker died"
    (copy / "search_summary.json").write_text(json.dumps(summary))
    with sqlite3.connect(copy / "optuna.db") as db:  # the study agrees: two trials with a finite value
        db.execute("UPDATE trials SET state = 'FAIL' WHERE trial_id NOT IN (SELECT trial_id FROM trial_values "
                   "WHERE value_type = 'FINITE' ORDER BY trial_id LIMIT 2)")

    out = write_report(copy, conditions=2)
    console = capsys.readouterr().out
    assert "skipped param_importance.png: too few completed trials" in console
    assert not (out / "param_importance.png").exists()
    md, page = (out / SUMMARY_MD).read_text(), (out / INDEX_HTML).read_text()
    note = "too few completed trials for parameter importance: 2 with a finite val/mse_v, at least 3 needed"
    assert f"> **Skipped:** {note}" in md and note in page
    assert page.count(DATA_URI) == len(FIGURES) - 1
    assert all((out / link).is_file() for link in _markdown_links(md))
    assert "2 failed" in md
    assert (out / "best_trial_samples.png").is_file()  # sampled from the moved copy's checkpoint
    assert f"Checkpoint: `{copy}/" in md


def test_a_param_with_one_value_skips_importance():
    space = parse_space({"params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    for value in (0.5, 0.4, 0.3, 0.2):
        study.enqueue_trial({"optim.lr": 1e-3})
        study.optimize(lambda trial, v=value: (trial.suggest_float("optim.lr", 1e-4, 1e-2, log=True), v)[1],
                       n_trials=1)
    fig, note = study_importance(study, space)
    assert fig is None and "no searched parameter took more than one value" in note


def test_importance_is_fanovas_on_the_varied_params():
    space = parse_space({"params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: trial.suggest_float("optim.lr", 1e-4, 1e-2, log=True) * 10, n_trials=5)
    fig, caption = study_importance(study, space)
    assert fig is not None and caption.startswith("fANOVA over the 5 trials")
    plt.close(fig)


def test_asha_rungs_match_ray():
    assert asha_rungs(10, 2, 2) == [2, 4, 8]  # search_spaces/lr_stft.yaml
    assert asha_rungs(3, 1, 2) == [1, 2]
    assert asha_rungs(2, 1, 2) == [1, 2]  # a rung at max_t, as Ray builds it
    assert asha_rungs(100, 1, 3) == [1, 3, 9, 27, 81]
    assert asha_rungs(4, 4, 2) == [4]


def test_bad_experiment_dir_is_one_error_line(tmp_path, capsys):
    assert_user_error(run_cli("abr_tune.report", str(tmp_path / "missing"), timeout=60), "is not a directory")
    for setup, fragment in ((lambda: None, "is not an abr-tune search experiment"),
                            (lambda: (tmp_path / "space.yaml").write_text("params: {}\n"), "has not finished"),
                            (lambda: (tmp_path / "search_summary.json").write_text("{"), "not a readable search")):
        setup()
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("abr-tune: error:"), err
        assert fragment in err[0], err
    assert not (tmp_path / REPORT_DIR).exists()  # nothing written for a bad directory
