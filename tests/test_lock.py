"""One process at a time writes an experiment: search, --resume, --extend and retrain take an
exclusive lock (flock) on the experiment directory, held for the life of the process and dropped
by the kernel when it ends (kill -9 included). A second process gets one error line naming the
holder's pid, and nothing is written into the directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml
from background import Background
from conftest import ROOT, assert_user_error, free_port, run_cli, search_base

from abr_tune.hpo.lock import lock_experiment, release_experiment


@pytest.mark.timeout(300)
def test_a_running_search_keeps_resume_extend_and_retrain_out_until_it_ends(tmp_path):
    space = {"base": search_base(tmp_path, max_epochs=2), "num_samples": 3, "max_concurrent": 1,
             "scheduler": {"max_t": 2, "grace_period": 2, "reduction_factor": 2},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    exp = tmp_path / "runs" / "l"
    search = Background("abr_tune.search", "--space", str(tmp_path / "space.yaml"), "--storage-path",
                        str(tmp_path / "runs"), "--name", "l", "--dashboard-port", str(free_port()))
    search.wait_for("started with configuration")
    holder = f"in use by another abr-tune process (pid {search.proc.pid})"
    for flag in ("--resume", "--extend"):
        proc = run_cli("abr_tune.search", flag, str(exp))
        assert_user_error(proc, holder)
        assert f"cannot {flag[2:]} the search: experiment '{exp}'" in proc.stderr
    # The same --name again: refused before Ray starts, the running search untouched.
    again = run_cli("abr_tune.search", "--space", str(tmp_path / "space.yaml"), "--storage-path",
                    str(tmp_path / "runs"), "--name", "l")
    assert_user_error(again, "already exists; pass --resume")
    search.signal(signal.SIGKILL, group=False)  # the holder dies: the kernel drops its lock
    search.kill_group()
    lock_experiment(exp, "test")  # this process takes it now
    try:
        (exp / "best_config.yaml").write_text("{}")  # what retrain looks for before it locks
        (exp / "search_summary.json").write_text("{}")
        code = ("import sys; from abr_tune.retrain import main; "
                f"sys.exit(main(['--experiment', {str(exp)!r}]))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert_user_error(proc, f"cannot re-train from the experiment: experiment '{exp}' is in use by another "
                                f"abr-tune process (pid {os.getpid()})")
    finally:
        release_experiment(exp)


def test_the_lock_is_exclusive_within_and_across_processes(tmp_path):
    lock_experiment(tmp_path, "test")
    lock_experiment(tmp_path, "test")  # the holder may ask again
    code = ("from abr_tune.hpo.lock import lock_experiment; "
            f"lock_experiment(__import__('pathlib').Path({str(tmp_path)!r}), 'x')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "UserError" in proc.stderr and f"in use by another abr-tune process (pid {os.getpid()})" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # a lock on the directory itself: no file in it
    release_experiment(tmp_path)
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0
