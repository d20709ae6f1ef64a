"""The search report on a real, tiny finished search.

The search is the one the report tests share (tests/conftest.py, `report_experiment`, run once per session):
5 fixed trials of the conftest tiny model, one that diverges (lr = 1), one that hardly learns, three
objectives and a constraint, ASHA with its one rung at max_t = 2. Tests that write a report write it into
a copy.
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
from conftest import REPORT_DIVERGING_LR, assert_user_error, run_cli

from abr_tune.hpo.report.figures import asha_rungs
from abr_tune.hpo.report.importance import study_importance
from abr_tune.hpo.space_file import parse_space
from abr_tune.report import INDEX_HTML, REPORT_DIR, SUMMARY_MD, main, write_report

FIGURES = ("learning_curves.png", "params_vs_metric.png", "param_importance.png", "pareto_front.png",
           "best_trial_samples.png")
DATA_URI = 'src="data:image/png;base64,'


@pytest.fixture
def experiment(report_experiment, tmp_path) -> Path:
    """A copy of the shared search without its report (the summary's absolute paths point to the original)."""
    copy = tmp_path / "moved"
    shutil.copytree(report_experiment[0], copy, ignore=shutil.ignore_patterns(REPORT_DIR))
    return copy


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
    diverged = [t for t in summary["trials"] if t["status"].startswith("diverged")]
    assert [t["params"]["optim.lr"] for t in diverged] == [REPORT_DIVERGING_LR]
    assert "Trials: 5 run of 5: 4 ran to max_t, 0 stopped early by ASHA, 1 diverged, 0 failed" in md
    assert f"python -m abr_tune.retrain --experiment {experiment}" in md
    assert "| `optim.lr` |" in md and "searched" in md  # the best config's diff against the base
    assert "ASHA on epochs: max_t 2, grace_period 2, reduction_factor 2 (rungs at epoch 2)" in md
    assert "fANOVA" in md or "PED-ANOVA" in md
    for text in (md, page):  # every trial appears in the top table
        assert all(t["trial_id"] in text for t in summary["trials"])
    assert f"Checkpoint: `{experiment}/" in md  # sampled from the moved copy's checkpoint
    assert (out / "noise.json").is_file()


@pytest.mark.timeout(120)
def test_too_few_completed_trials_skip_importance_with_a_note(experiment, capsys):
    """All but two of the trials that completed fail: two are too few for importance, not a crash. No sampling
    (the command's test above samples)."""
    copy = experiment
    summary = json.loads((copy / "search_summary.json").read_text())
    completed = [t for t in summary["trials"] if t["status"] == "completed"]
    for t in completed[2:]:
        t["status"] = "error: RuntimeError: worker died"
    (copy / "search_summary.json").write_text(json.dumps(summary))
    with sqlite3.connect(copy / "optuna.db") as db:  # the study agrees: two trials with finite values
        db.execute("UPDATE trials SET state = 'FAIL' WHERE trial_id NOT IN (SELECT DISTINCT trial_id FROM "
                   "trial_values WHERE value_type = 'FINITE' ORDER BY trial_id LIMIT 2)")

    out = write_report(copy, conditions=0)
    console = capsys.readouterr().out
    assert "skipped param_importance.png: too few completed trials" in console
    assert not (out / "param_importance.png").exists()
    md, page = (out / SUMMARY_MD).read_text(), (out / INDEX_HTML).read_text()
    note = ("too few completed trials for parameter importance: 2 with a finite val/mse_v (the primary objective), "
            "at least 3 needed")
    assert f"> **Skipped:** {note}" in md and note in page
    assert page.count(DATA_URI) == len(FIGURES) - 2  # and no samples figure
    assert "skipped best_trial_samples.png: sampling skipped (--conditions 0)" in console
    assert all((out / link).is_file() for link in _markdown_links(md))
    assert f"{len(completed) - 2} failed" in md


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
