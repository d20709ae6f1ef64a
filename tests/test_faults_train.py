"""Faults injected into standalone training: Ctrl-C, a crash mid-checkpoint, hostile checkpoint files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, assert_user_error, run_cli, tiny_config

from abr_tune.checkpoint import load_checkpoint, remove_partial_saves_under, save_atomic
from abr_tune.errors import UserError


def _write_config(tmp_path: Path, **sections) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, **sections)))
    return path


def test_sigint_writes_a_last_checkpoint_and_says_how_to_resume(tmp_path):
    cfg = _write_config(tmp_path, trainer={"max_epochs": 200, "progress": True, "sample_every_epochs": 100})
    last = tmp_path / "runs/tiny/checkpoints/tiny_last.pt"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # SIGINT restored in the child: a suite started from a shell that ignores it (a background job)
    # passes the ignored signal on, and Python then installs no KeyboardInterrupt handler.
    proc = subprocess.Popen([sys.executable, "-m", "abr_tune.train", "--config", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert last.exists(), "no epoch finished in time"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert f"resume with: python -m abr_tune.train --resume {last}" in out
    state = load_checkpoint(last)
    assert state["epoch"] >= 1
    more = f"trainer.max_epochs: {state['epoch'] + 1}"
    resumed = run_cli("abr_tune.train", "--resume", str(last), "--override", more)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(last)["epoch"] == state["epoch"] + 1


_CRASH_IN_RENAME = """
import os, sys
import abr_tune.checkpoint as ckpt
calls = {"n": 0}
real_replace = os.replace
def crash_on_second_save(src, dst):
    calls["n"] += 1
    if str(dst).endswith("_last.pt") and calls["n"] > 1:
        os.kill(os.getpid(), 9)  # SIGKILL between the write and the rename
    return real_replace(src, dst)
ckpt.os.replace = crash_on_second_save
from abr_tune.train import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_between_write_and_rename_leaves_the_previous_checkpoint_intact(tmp_path):
    cfg = _write_config(tmp_path, trainer={"max_epochs": 3, "sample_every_epochs": 100})
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _CRASH_IN_RENAME, "--config", str(cfg)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    ckpt_dir = tmp_path / "runs/tiny/checkpoints"
    assert load_checkpoint(ckpt_dir / "tiny_last.pt")["epoch"] == 1  # the good epoch-1 file
    assert load_checkpoint(ckpt_dir / "tiny_best.pt")["epoch"] == 1
    assert list(ckpt_dir.glob(".tiny_last.pt.*.tmp")), "the torn temp file stays aside, never under the real name"


def test_partial_saves_of_stopped_trials_are_swept_and_nothing_else(tmp_path):
    # ASHA stops a trial mid-save: its temp file stays in the trial's checkpoint directory, which no
    # run writes again; the search sweeps them once Tune has returned.
    ckpts = tmp_path / "trial_a" / "t" / "checkpoints"
    save_atomic({"model": {}, "config": {}, "epoch": 1}, ckpts / "t_last.pt")
    torn = [ckpts / ".t_last.pt.x1y2.tmp", tmp_path / "trial_b" / ".t_best.pt.abcd.tmp"]
    kept = [ckpts / "t_last.pt", tmp_path / "trial_b" / "notes.tmp", tmp_path / "trial_b" / "t_best.pt"]
    for p in torn + kept[1:]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 10)
    assert sorted(remove_partial_saves_under(tmp_path)) == sorted(torn)
    assert not any(p.exists() for p in torn) and all(p.exists() for p in kept)
    assert remove_partial_saves_under(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x_last.pt"
    save_atomic({"model": {}, "config": {}, "epoch": 1}, path)

    def refuse(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        save_atomic({"model": {}, "config": {}, "epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert not list(tmp_path.glob("*.tmp"))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_checkpoint",))


def test_malicious_pickle_in_a_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "x": _Payload()}, bad)
    with pytest.raises(UserError, match="corrupt, truncated or not an abr-tune checkpoint"):
        load_checkpoint(bad)
    assert not (tmp_path / "pwned_by_checkpoint").exists() and not Path("pwned_by_checkpoint").exists()
    assert_user_error(run_cli("abr_tune.train", "--resume", str(bad), cwd=tmp_path), "not an abr-tune checkpoint")
    assert not (tmp_path / "pwned_by_checkpoint").exists()


def test_checkpoint_from_an_incompatible_model(tmp_path):
    from abr_tune.train import train_abr

    summary = train_abr(tiny_config(tmp_path, trainer={"max_epochs": 1, "sample_every_epochs": 5}))
    before = Path(summary["last_checkpoint"]).read_bytes()
    wider = _write_config(tmp_path, model={"d_model": 64, "n_heads": 4}, trainer={"max_epochs": 2})
    proc = run_cli("abr_tune.train", "--config", str(wider), "--resume", summary["last_checkpoint"])
    assert_user_error(proc, "cannot change model.d_model on resume (model.d_model 32 -> 64)")
    assert Path(summary["last_checkpoint"]).read_bytes() == before


def test_log_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a directory")
    cfg = _write_config(tmp_path)
    assert_user_error(run_cli("abr_tune.train", "--config", str(cfg)), f"'{blocker}' is not a directory")
    assert blocker.read_text() == "not a directory"


def _run_with_read_only(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m <args>` with `directory` read-only: chmod for a normal user; for root, whom
    permissions do not stop, a read-only bind mount in a private mount namespace (`unshare -m`)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            return run_cli(*args)
        finally:
            directory.chmod(0o755)
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("running as root without mount namespaces: no way to make a directory read-only")
    script = 'd=$1; shift; mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" && exec "$@"'
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(directory), sys.executable, "-m", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_log_dir_on_a_read_only_directory_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    cfg = _write_config(tmp_path, log_dir=str(locked / "runs"))
    proc = _run_with_read_only(locked, "abr_tune.train", "--config", str(cfg))
    assert_user_error(proc, f"log_dir '{locked / 'runs'}' cannot hold the run: '{locked}' is not writable")
    assert list(locked.iterdir()) == []


def test_checkpoint_without_ema_or_normaliser_is_refused_naming_them(tmp_path):
    from abr_tune.checkpoint import GENERATE_KEYS, RESUME_KEYS
    from abr_tune.train import train_abr

    summary = train_abr(tiny_config(tmp_path, trainer={"max_epochs": 1, "sample_every_epochs": 5}))
    state = load_checkpoint(summary["last_checkpoint"])
    stripped = Path(summary["last_checkpoint"]).with_name("tiny_stripped.pt")  # still inside its run
    torch.save({k: v for k, v in state.items() if k not in ("ema", "normaliser")}, stripped)
    with pytest.raises(UserError, match="lacks ema, normaliser"):
        load_checkpoint(stripped, need=GENERATE_KEYS)
    edited = tmp_path / "edited.pt"
    torch.save({**state, "epoch": "three", "normaliser": [1.0]}, edited)
    with pytest.raises(UserError, match="has a malformed epoch, normaliser"):
        load_checkpoint(edited, need=RESUME_KEYS)
    before = Path(summary["last_checkpoint"]).read_bytes()
    proc = run_cli("abr_tune.train", "--resume", str(stripped), "--override", "trainer.max_epochs: 2")
    assert_user_error(proc, f"checkpoint '{stripped}' lacks ema, normaliser")
    assert Path(summary["last_checkpoint"]).read_bytes() == before


def test_retention_keeps_the_last_k_for_an_exp_name_with_glob_characters(tmp_path):
    from abr_tune.checkpoint import CheckpointManager

    ckpts = CheckpointManager(tmp_path, "run[1]", keep_last_k=2)
    neighbour = tmp_path / "run1_epoch0001.pt"  # what the glob "run[1]_epoch*.pt" would match instead
    neighbour.write_bytes(b"another run's file")
    for epoch in range(1, 6):
        ckpts.save_periodic({"model": {}, "config": {}, "epoch": epoch}, epoch)
    assert [p.name for p in ckpts.periodic()] == ["run[1]_epoch0004.pt", "run[1]_epoch0005.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1_epoch0001.pt", "run[1]_epoch0004.pt",
                                                          "run[1]_epoch0005.pt"]
    assert neighbour.read_bytes() == b"another run's file"
