"""The report of a real search with several objectives: the Pareto section and figure, importance
per objective, the sampling noise of the sample metrics.

The search is the one the report tests share (tests/conftest.py, `report_experiment`, run once per session):
5 fixed trials of the conftest tiny model, 2 epochs each (no trial stopped early; the one at lr = 1 diverges,
so 4 points), objectives val/mse_v, sample/corr and sample/detection_acc, and a constraint on the correlation.
The report read here is the one the search wrote; a test that changes the experiment works on a copy.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
from itertools import dropwhile, takewhile
from pathlib import Path

import pytest
from conftest import REPORT_CONSTRAINT, REPORT_OBJECTIVES

from abr_tune.hpo.report.pareto_figure import pareto_figure
from abr_tune.report import INDEX_HTML, REPORT_DIR, SUMMARY_MD, write_report

OBJECTIVES = REPORT_OBJECTIVES
MODES = {"val/mse_v": "min", "sample/corr": "max", "sample/detection_acc": "max"}
CONSTRAINT = REPORT_CONSTRAINT
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
POINTS = 4  # the trials that ran to max_t with every objective finite


@pytest.fixture
def experiment(report_experiment) -> tuple[Path, str]:
    return report_experiment


def _summary(exp: Path) -> dict:
    return json.loads((exp / "search_summary.json").read_text())


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _section(md: str, title: str) -> str:
    start = md.index(f"## {title}\n")
    end = md.find("\n## ", start + 1)
    return md[start:end if end > 0 else None]


def _table(text: str) -> list[dict[str, str]]:
    """The first Markdown table in `text`, as one dict per row."""
    lines = list(takewhile(lambda ln: ln.startswith("|"), dropwhile(lambda ln: not ln.startswith("|"),
                                                                     text.splitlines())))
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[2:]]


def _dominates(a: dict, b: dict) -> bool:
    """a is at least as good as b on every objective and better on one (written here, not imported)."""
    signed = [(a[n], b[n]) if MODES[n] == "min" else (-a[n], -b[n]) for n in OBJECTIVES]
    return all(x <= y for x, y in signed) and any(x < y for x, y in signed)


def _meets(values: dict, constraint: str) -> bool:
    metric, op, bound = constraint.split()
    value = values.get(metric)
    if value is None or not math.isfinite(value):
        return False
    return value >= float(bound) if op == ">=" else value <= float(bound)


def test_the_front_is_non_dominated_and_the_constraints_exclude_the_right_trials(experiment):
    exp, _ = experiment
    summary = _summary(exp)
    pareto = summary["pareto"]
    assert [o["name"] for o in pareto["objectives"]] == OBJECTIVES and pareto["constraints"] == [CONSTRAINT]
    points = {t["trial_id"]: t["objectives"] for t in summary["trials"]
              if not t["stopped_early"] and all(_finite(t["objectives"].get(n)) for n in OBJECTIVES)}
    assert len(points) == POINTS and {r["label"] for r in pareto["rows"]} == set(points)  # every such trial a point
    feasible = {label for label, values in points.items() if _meets(values, CONSTRAINT)}
    for row in pareto["rows"]:
        assert row["feasible"] == _meets(row["values"], CONSTRAINT), row
    assert set(pareto["infeasible"]) == set(points) - feasible
    front = {a for a in feasible if not any(_dominates(points[b], points[a]) for b in feasible if b != a)}
    assert set(pareto["front"]) == front
    if front:
        assert pareto["chosen"] == min(front, key=lambda label: points[label]["val/mse_v"])
        assert summary["best"]["trial_id"] == pareto["chosen"]
    else:
        assert pareto["chosen"] is None and summary["best"] is None


def test_the_report_has_the_pareto_section_with_exactly_the_front(experiment):
    exp, stdout = experiment
    pareto = _summary(exp)["pareto"]
    out = exp / REPORT_DIR
    md, page = (out / SUMMARY_MD).read_text(), (out / INDEX_HTML).read_text()
    assert "could not be written" not in stdout and "multi-objective optimization" not in stdout  # no crash
    section = _section(md, "Pareto front")
    rows = _table(section)
    assert {r["trial"].split("`")[1] for r in rows} == {r["label"] for r in pareto["rows"]}
    assert [r["trial"].split("`")[1] for r in rows if r["on front"] == "yes"] == pareto["front"]
    assert all(r["feasible"] == ("yes" if r["trial"].split("`")[1] not in pareto["infeasible"] else "**no**")
               for r in rows)
    assert f"Constraints `{CONSTRAINT}` excluded {len(pareto['infeasible'])} of {POINTS} points" in section
    assert "the search's trials" in section and pareto["rule"] in section
    assert "![Pareto front](pareto_front.png)" in section and "<h2>Pareto front</h2>" in page
    outcome = _section(md, "Outcome")
    if pareto["chosen"]:
        assert [r["trial"].split("`")[1] for r in rows if r["trial"].endswith("**chosen**")] == [pareto["chosen"]]
        assert f"Chosen from the Pareto front by the rule, {pareto['rule']}: `{pareto['chosen']}`" in outcome
    else:
        assert "**No point meets the constraints**" in outcome


def test_the_pareto_figure_and_the_importance_per_objective(experiment):
    exp, stdout = experiment
    out = exp / REPORT_DIR
    for name in ("pareto_front.png", "param_importance.png"):
        data = (out / name).read_bytes()
        width, height = struct.unpack(">II", data[16:24])  # the PNG's IHDR
        assert data[:8] == PNG_MAGIC and len(data) > 15_000 and width > 600 and height > 250, name
        assert f"wrote {name}" in stdout
    md = (out / SUMMARY_MD).read_text()
    caption = md[md.index("![Parameter importance]"):]
    assert "one panel per objective" in caption and "`val/mse_v`, first" in caption


def test_the_sampling_noise_of_the_sample_metrics(experiment):
    exp, stdout = experiment
    summary = _summary(exp)
    noise = json.loads((exp / REPORT_DIR / "noise.json").read_text())
    best = next(t for t in summary["trials"] if t["trial_id"] == summary["best"]["trial_id"])
    assert noise["trial"] == best["trial_id"] and noise["epoch"] == best["best_epoch"] == 2
    assert noise["split"] == "val" and noise["conditions"] == len(noise["indices"]) >= 4
    assert len(noise["seeds"]) >= 5 and noise["val_seed"] not in noise["seeds"]
    assert noise["searched"] == ["sample/corr", "sample/detection_acc"]
    for name in noise["searched"]:
        m = noise["metrics"][name]
        assert m["n"] == len(noise["seeds"]) and math.isfinite(m["sd"]) and m["sd"] >= 0, name
        # At the search's own sampling seed, the same conditions give the value the trial recorded.
        assert noise["at_val_seed"][name] == pytest.approx(best["objectives"][name], abs=1e-4), name
        spread = noise["spread"][name]
        assert spread["n"] >= 2 and spread["reading"]
    pair = noise["paired"]  # the runner-up at the same seeds: the noise of a difference between two trials
    assert pair["trial"] != best["trial_id"] and math.isfinite(pair["metrics"]["sample/corr"]["sd"])
    runner = next(t for t in summary["trials"] if t["trial_id"] == pair["trial"])
    assert pair["metrics"]["sample/corr"]["at_val_seed"] == pytest.approx(
        best["objectives"]["sample/corr"] - runner["objectives"]["sample/corr"], abs=1e-4)
    assert re.search(rf"sampling noise: {best['trial_id']} seed \d+ \(6 of 6\)", stdout)
    section = _section((exp / REPORT_DIR / SUMMARY_MD).read_text(), "Sampling noise of the sample metrics")
    assert {r["metric"] for r in _table(section)} == {"`sample/corr`", "`sample/detection_acc`"}


def test_no_point_meeting_the_constraints_is_said_plainly(experiment, tmp_path):
    """The same search as if its constraint had excluded every point: no front, no best, said first."""
    exp, _ = experiment
    copy = tmp_path / "none_feasible"
    shutil.copytree(exp, copy, ignore=shutil.ignore_patterns(REPORT_DIR))
    summary = _summary(copy)
    pareto = summary["pareto"]
    for row in pareto["rows"]:
        row["feasible"], row["on_front"] = False, False
    pareto.update(front=[], chosen=None, infeasible=[r["label"] for r in pareto["rows"]])
    summary["best"] = None
    (copy / "search_summary.json").write_text(json.dumps(summary))
    out = write_report(copy, conditions=0, log=lambda _: None)
    md = (out / SUMMARY_MD).read_text()
    outcome = _section(md, "Outcome").splitlines()
    assert outcome[2].startswith(f"- **No point meets the constraints** (`{CONSTRAINT}`): all {POINTS} ")
    section = _section(md, "Pareto front")
    assert "**No default best: no point meets the constraints**" in section
    assert f"excluded {POINTS} of {POINTS} points" in section
    assert all(r["on front"] == "" and r["feasible"] == "**no**" for r in _table(section))
    assert (out / "pareto_front.png").read_bytes()[:8] == PNG_MAGIC
    assert "> **Skipped:** sampling skipped (--conditions 0)" in _section(md, "Sampling noise of the sample metrics")
    assert not (out / "noise.json").exists()


def test_two_objectives_draw_the_front_as_a_step_line(experiment):
    exp, _ = experiment
    pareto = _summary(exp)["pareto"]
    pareto["objectives"] = pareto["objectives"][:2]
    fig, caption = pareto_figure(pareto)
    assert fig is not None and "step line" in caption
    ax = fig.axes[0]
    assert ax.get_xlabel() == "val/mse_v (lower is better)" and ax.get_ylabel() == "sample/corr (higher is better)"
    if pareto["front"]:
        assert len(ax.lines) >= 1  # the staircase
    assert pareto_figure(None)[0] is None and pareto_figure({**pareto, "rows": []})[0] is None
