"""`abr-tune <command>`: one entry point, grouped help, --version, and a core that needs no Ray or Optuna."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from abr_tune import __version__
from abr_tune.cli import COMMANDS, main


def test_version_and_grouped_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"abr-tune {__version__}"
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "Search (needs abr-tune[search])" in out
    assert all(f"  {name}" in out for name in COMMANDS)


def test_an_unknown_command_is_one_error_line(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("abr-tune: error: unknown command 'trian'")


def test_a_command_runs_with_its_own_arguments(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["config-doc", "--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_the_core_commands_import_without_ray_or_optuna():
    # ray and optuna set to None in sys.modules: any import of them raises ImportError.
    code = ("import sys\nfor m in ('ray', 'optuna', 'optuna_dashboard'): sys.modules[m] = None\n"
            "import abr_tune.train, abr_tune.sample, abr_tune.evaluate, abr_tune.convert, abr_tune.cli\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
