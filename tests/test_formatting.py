"""The one text table the package and the benchmarks print."""

from __future__ import annotations

import sys
from pathlib import Path

from abr_tune.formatting import table

ROOT = Path(__file__).resolve().parents[1]
ROWS = [("name", "value"), ("corr", "0.9"), ("mse_uv", "12.25")]


def test_columns_are_left_aligned_under_a_rule_as_long_as_the_head():
    assert table(ROWS) == ["name    value",
                           "-------------",
                           "corr    0.9",
                           "mse_uv  12.25"]
    assert table(ROWS, rule=False, trim=False) == ["name    value", "corr    0.9  ", "mse_uv  12.25"]


def test_right_aligned_columns_line_up_the_numbers():
    assert table(ROWS, rule=False, right=True) == ["  name  value",
                                                   "  corr    0.9",
                                                   "mse_uv  12.25"]


def test_the_benchmarks_print_their_tables_with_it():
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import Figure
    from benchmarks.fidelity import relative_table
    from benchmarks.real_data import KEYS, ORACLES, scale_table
    from benchmarks.run import format_table

    figures = [Figure("step", "steps/s ratio", 1.234, "x", ">= 1.1", True),
               Figure("GPU", "GPU figures", None, "", "skipped", None)]
    assert format_table(figures).splitlines() == [
        "section  figure         value   target   result",
        "-----------------------------------------------",
        "step     steps/s ratio  1.23 x  >= 1.1   PASS",
        "GPU      GPU figures    -       skipped  -"]
    relative = {"relative_to_oracle": {"1": {"corr": 0.5, "mse_uv": 2.0}, "1.5": {"corr": 0.75, "mse_uv": 1.25}}}
    assert relative_table(relative).splitlines() == ["CFG  corr  mse_uv",
                                                     "  1   0.5       2",
                                                     "1.5  0.75    1.25"]
    metrics = {k: 0.5 for k in (*KEYS[:7], *ORACLES.values())}
    lines = scale_table({"1": metrics, "2": {**metrics, "c2st_acc": float("nan")}}).splitlines()
    assert lines[0].split() == ["CFG", *KEYS[:7], *ORACLES.values()] and lines[2].split()[:2] == ["2", "-"]
    assert len({len(line) for line in lines}) == 1  # right-aligned: every line as long as the head
