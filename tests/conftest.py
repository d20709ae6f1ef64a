"""Shared fixtures: a tiny CPU config that trains in seconds."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "seed": 3,
    "device": "cpu",
    "data": {"synthetic": {"n_subjects": 24, "recordings_per_subject": 6}},
    "loader": {"batch_size": 16},
    "model": {"d_model": 32, "n_layers": 1, "n_heads": 4, "ff_mult": 2, "dropout": 0.1},
    "diffusion": {"num_train_steps": 100, "sample_steps": 5},
    "optim": {"lr": 2e-3, "amp": False, "ema_decay": 0.9},
    "trainer": {"max_epochs": 3, "sample_every_epochs": 1, "save_every_epochs": 1, "keep_last_k": 2,
                "log_every_steps": 1, "progress": False},
    "viz": {"num_samples": 4},
    "advanced": {"lr_warmup_steps": 5, "torch_threads": 1},
}


def tiny_config(tmp_path: Path, **sections) -> dict:
    """The tiny config as a raw dict, logging under tmp_path; `sections` update top-level sections."""
    import copy

    raw = copy.deepcopy(TINY)
    raw["log_dir"] = str(tmp_path / "runs")
    raw["exp_name"] = "tiny"
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return raw


@pytest.fixture
def tiny(tmp_path):
    return tiny_config(tmp_path)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m <args>` as a user would; returns the completed process (text output)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def run_main(capsys, module: str, *args: str):
    """Call `module`'s `main(argv)` in this process (no child process): the exit code
    (SystemExit included) and the captured output, as `.returncode`, `.stdout`, `.stderr`."""
    import importlib
    from types import SimpleNamespace

    capsys.readouterr()
    try:
        code = importlib.import_module(module).main(list(args))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def assert_user_error(proc, fragment: str) -> None:
    """Exit 2, one `abr-tune: error:` line naming the problem, no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    errors = [line for line in lines if line.startswith("abr-tune: error:")]
    assert len(errors) == 1, lines
    assert fragment in errors[0], errors[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that Ray will not take itself.

    Not the kernel's pick (bind to port 0): that comes from the ephemeral range, where Ray's own
    services take their random ports while it starts, so the port a test hands Ray for its
    dashboard could be taken by Ray's GCS or an agent a moment later. 20000-32767 lies between
    Ray's worker ports (10002-19999) and Linux's ephemeral range (32768-60999).
    """
    for port in random.Random().sample(range(20000, 32768), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port in 20000-32767 on 127.0.0.1")


@pytest.fixture
def node_ip_restored():
    """start_ray switches this process's Ray to single-node mode; later tests get Ray's default back."""
    from ray._private import ray_constants

    from abr_tune.hpo.cluster import SINGLE_NODE_ENV

    saved, env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.pop(SINGLE_NODE_ENV, None)
    yield
    ray_constants.ENABLE_RAY_CLUSTER = saved
    os.environ.pop(SINGLE_NODE_ENV, None)
    if env is not None:
        os.environ[SINGLE_NODE_ENV] = env


def search_base(tmp_path: Path, **trainer) -> dict:
    """The tiny config as a search's inline base: no LR warm-up, frequent step logs."""
    base = tiny_config(tmp_path)
    base["trainer"].update({"sample_every_epochs": 2, "log_every_steps": 5, **trainer})
    base["advanced"]["lr_warmup_steps"] = 0
    return base


def run_search(tmp_path: Path, space: dict, *flags: str, name: str = "exp",
               timeout: float = 240) -> tuple[Path, subprocess.CompletedProcess]:
    """Write `space` as space.yaml under `tmp_path` and run a whole search on it through the CLI
    (its own local Ray, a free dashboard port); returns its experiment directory and the process."""
    import yaml

    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    proc = run_cli("abr_tune.search", "--space", str(tmp_path / "space.yaml"), "--storage-path",
                   str(tmp_path / "runs"), "--name", name, "--dashboard-port", str(free_port()), *flags,
                   timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp_path / "runs" / name, proc


# The one finished search the report tests read (tests/test_report.py, tests/test_pareto_report.py): five fixed
# trials of the tiny model, 2 epochs each, no trial stopped early (grace_period = max_t), three objectives and a
# constraint on the correlation. The tiny model's sample/corr: about 0.013 at lr 3e-4, 0.016 to 0.020 above.
REPORT_OBJECTIVES = ["val/mse_v", "sample/corr", "sample/detection_acc"]
REPORT_CONSTRAINT = "sample/corr >= 0.015"
REPORT_DIVERGING_LR = 1.0


@pytest.fixture(scope="session")
def report_experiment(tmp_path_factory) -> tuple[Path, str]:
    """(experiment dir, the search's stdout) of the search the report tests share, run once per test session.
    Read it; a test that writes into an experiment copies it into its tmp_path first."""
    tmp = tmp_path_factory.mktemp("report_search")
    space = {
        "base": search_base(tmp, sample_every_epochs=2), "metrics": REPORT_OBJECTIVES,
        "constraints": [REPORT_CONSTRAINT], "num_samples": 5, "max_concurrent": 2,
        "scheduler": {"max_t": 2, "grace_period": 2, "reduction_factor": 2},
        "search": {"seed": 0, "points_to_evaluate": [  # every trial fixed: no luck involved
            "base", {"optim.lr": 3e-4, "advanced.cfg_dropout_prob": 0.0},
            {"optim.lr": 5e-3, "advanced.cfg_dropout_prob": 0.3},
            {"optim.lr": 1e-3, "advanced.cfg_dropout_prob": 0.2},
            {"optim.lr": REPORT_DIVERGING_LR, "advanced.cfg_dropout_prob": 0.1}]},  # diverges in its first epoch
        "params": {"optim.lr": {"dist": "loguniform", "low": 1e-5, "high": 1.0},
                   "advanced.cfg_dropout_prob": {"dist": "uniform", "low": 0.0, "high": 0.3}},
    }
    exp, proc = run_search(tmp, space, timeout=300)
    return exp, proc.stdout


def small_npz(path: Path, nan_row: int | None = None) -> Path:
    """A 48-recording .npz of 12 patients (noise, one condition); `nan_row` puts a NaN in that recording."""
    import numpy as np

    signals = np.random.default_rng(0).normal(0, 0.1, (48, 200)).astype(np.float32)
    if nan_row is not None:
        signals[nan_row, 50] = np.nan
    static = np.tile([[30.0, 80.0, 21.1, 3.0]], (48, 1)).astype(np.float32)
    np.savez(path, signals=signals, static=static, patient_id=np.arange(48) // 4)
    return path


# The fast tier: `python -m pytest -m "not slow"`. A test is marked `slow` automatically when its body, one
# of its fixtures or a helper of its module (transitively) starts a process, a Ray cluster or a search, or
# trains for more than a few seconds; so a new test cannot forget the mark.
SLOW_TOKENS = ("run_cli", "run_search", "subprocess", "Popen", "start_ray", "ray.init", "tune.Tuner",
               "node_ip_restored", "Background(", "search_main", "train_main", "run_training")


# Measured once with --durations=0: tests over ~4 s on 2 cores that no token above finds.
SLOW_TESTS = {"test_resume_reproduces_the_uninterrupted_run", "test_generation_time_50k"}


def _slow_functions(path: Path, extra: set[str]) -> set[str]:
    """Names of the module-level functions in `path` that reach a slow token or another such function."""
    import ast
    import re

    source = path.read_text()
    bodies = {node.name: ast.get_source_segment(source, node) or ""
              for node in ast.parse(source).body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    slow = set(extra)
    changed = True
    while changed:
        changed = False
        for name, body in bodies.items():
            inner = body.split("\n", 1)[-1]
            if name not in slow and (any(t in inner for t in SLOW_TOKENS)
                                     or any(re.search(rf"\b{s}\b", inner) for s in slow)):
                slow.add(name)
                changed = True
    return slow


def pytest_collection_modifyitems(config, items):
    conftest_slow = _slow_functions(Path(__file__), set())
    cache: dict[Path, set[str]] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path not in cache:
            cache[path] = _slow_functions(path, conftest_slow)
        slow = cache[path]
        name = getattr(item, "originalname", None) or item.name.split("[")[0]
        if name in slow or name in SLOW_TESTS or any(f in slow for f in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
