"""`abr-tune <command>`: one entry point over every command, its help, its version, and a core that runs
without Ray or Optuna."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

from abr_tune import __version__, cli

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_grouped_help(capsys):
    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"abr-tune {__version__}"
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.index("Search (pip install 'abr-tune[search]')") < out.index("search ") < out.index("Train and")
    assert all(f"  {name} " in out for name in cli.COMMANDS)
    assert cli.main([]) == 2  # no command: the help, and a usage exit


def test_an_unknown_command_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["trian"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("abr-tune: error: unknown command 'trian'")
    assert "train" in err and len(err.strip().splitlines()) == 1


def test_a_command_gets_its_own_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["config-doc", "--help"])
    assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out


BLOCK = "import sys; sys.modules.update(ray=None, optuna=None); from abr_tune import cli; "


def test_the_core_trains_samples_and_converts_without_ray_or_optuna(tmp_path):
    """With ray and optuna unimportable, train runs, and search says which extra to install."""
    raw = tiny_config(tmp_path)
    raw["trainer"].update(max_epochs=1, sample_every_epochs=100)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    code = BLOCK + f"sys.exit(cli.main(['train', '--config', {str(tmp_path / 'c.yaml')!r}]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "runs").rglob("*_last.pt"))
    for command in ("sample", "evaluate", "convert"):
        help_done = subprocess.run([sys.executable, "-c", BLOCK + f"cli.main([{command!r}, '--help'])"],
                                   capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert help_done.returncode == 0 and "usage:" in help_done.stdout, help_done.stderr[-1000:]
    searched = subprocess.run([sys.executable, "-c", BLOCK.replace("sys.modules.update(ray=None, optuna=None); ", "")
                               + "import importlib.util as u; u.find_spec = lambda name, *a: None; "
                               "cli.main(['search', '--smoke-test'])"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert searched.returncode == 2 and "pip install 'abr-tune[search]'" in searched.stderr
    assert "Traceback" not in searched.stderr
