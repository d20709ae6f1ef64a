"""benchmarks/search_efficiency.py: the best-so-far curve, the time to a target and the per-method summary."""

from __future__ import annotations

from benchmarks.search_efficiency import _best_so_far, _median_time, summarise, time_to


def test_best_so_far_keeps_the_running_minimum():
    assert _best_so_far([(1.04, 0.9), (2.0, 0.95), (3.0, 0.7), (4.0, 0.8)]) == [
        (1.0, 0.9), (2.0, 0.9), (3.0, 0.7), (4.0, 0.7)]


def test_time_to_is_the_first_time_at_or_below_the_target():
    curve = [[10.0, 0.9], [20.0, 0.8], [30.0, 0.7]]
    assert time_to(curve, 0.8) == 20.0
    assert time_to(curve, 0.95) == 10.0
    assert time_to(curve, 0.5) is None


def test_median_time_counts_never_as_infinite():
    assert _median_time([10.0, None, 30.0]) == 30.0
    assert _median_time([10.0, None, None]) is None


def _run(seed, confirmed, search, curve, wall=100.0):
    return {"seed": seed, "confirmed": confirmed, "search_value": search, "curve": curve, "wall": wall,
            "trial_epochs": 20}


def test_summary_times_each_method_to_the_default_median():
    results = {
        "default": [_run(0, 0.70, 0.72, [[50, 0.72]]), _run(1, 0.68, 0.70, [[40, 0.75], [60, 0.70]]),
                    _run(2, 0.66, 0.69, [[30, 0.69]])],
        "random": [_run(0, 0.75, 0.74, [[20, 0.74], [90, 0.66]]), _run(1, 0.71, 0.71, [[10, 0.71]]),
                   _run(2, 0.60, 0.62, [[15, 0.62]])],
    }
    s = summarise(results)
    assert s["default_median_confirmed"] == 0.68 and s["default_median_search"] == 0.70
    assert s["random"]["median_confirmed"] == 0.71 and s["random"]["spread"] == [0.60, 0.75]
    assert s["random"]["time_to_default_confirmed_s"] == [90, None, 15]
    assert s["random"]["median_time_to_default_confirmed_s"] == 90
    assert s["default"]["time_to_default_search_s"] == [None, 60, 30]
    assert s["default"]["median_time_to_default_search_s"] == 60


def test_combine_summarises_the_runs_of_several_outputs(tmp_path):
    import argparse
    import json

    from benchmarks.search_efficiency import combine

    parts = []
    for i, seeds in enumerate(([0, 1], [2])):
        runs = {"default": [_run(s, 0.70 - 0.01 * s, 0.72, [[50, 0.72]]) for s in seeds],
                "optuna": [_run(s, 0.65, 0.66, [[20, 0.66]]) for s in seeds]}
        part = tmp_path / f"part{i}.json"
        part.write_text(json.dumps({"runs": runs, "summary": {"skipped": {"bohb": "no hpbandster"}},
                                    "loadavg": {"start": [1.0, 1.0, 1.0]}}))
        parts.append(part)
    out = tmp_path / "all.json"
    summary = combine(argparse.Namespace(combine=parts, out=out, seeds=None))
    assert summary["default"]["seeds"] == [0, 1, 2] and summary["default_median_confirmed"] == 0.69
    assert summary["optuna"]["median_time_to_default_confirmed_s"] == 20
    assert summary["skipped"] == {"bohb": "no hpbandster"}
    assert json.loads(out.read_text())["args"]["seeds"] == [0, 1, 2]
    assert out.with_suffix(".png").stat().st_size > 0
