"""`python -m abr_tune.sample`: every number checked before torch loads, --out checked before work, warnings."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, assert_user_error, run_cli
from test_generator import make_checkpoint

from abr_tune.sample import main

CONDITION = ["--age", "30", "--intensity", "80", "--rate", "21.1", "--fmp", "3"]


def _condition(**changed: str) -> list[str]:
    values = dict(zip(CONDITION[::2], CONDITION[1::2], strict=True))
    values.update({f"--{k}": v for k, v in changed.items()})
    return [x for pair in values.items() for x in pair]


def _user_error(capsys, argv: list[str]) -> str:
    """Run sample's main in-process; assert exit 2 with one error line and return it."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("abr-tune: error: "), lines
    return lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--cfg-scale", "nan"], "--cfg-scale must be a finite number in [0, 50], got nan"),
    (["--cfg-scale", "inf"], "--cfg-scale must be a finite number in [0, 50], got inf"),
    (["--eta", "nan"], "--eta must be a finite number in [0, 1], got nan"),
    (["--eta", "1.5"], "--eta must be a finite number in [0, 1], got 1.5"),
    (_condition(intensity="1e30"), "--intensity must be a finite number in [-20, 140] dB nHL, got 1e+30"),
    (_condition(age="-5"), "--age must be a finite number in [0, 120] years, got -5"),
    (_condition(fmp="-1"), "--fmp must be a finite number in [0, 100000], got -1"),
    (_condition(rate="0"), "--rate must be a finite number in (0, 500] clicks/s, got 0"),
    (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
    (["--n", "1000000"], "--n must be an integer in [1, 100000], got 1000000"),
    (["--n", "65"], "--n 65 is too many for a .png (one panel per waveform, at most 64); write an .npz for more"),
    (["--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
])
def test_bad_numbers_fail_before_the_checkpoint_is_read(capsys, tmp_path, args, message):
    # the checkpoint does not exist: an error naming the flag shows the flag was checked first
    out = tmp_path / "s.png"
    argv = ["--checkpoint", str(tmp_path / "none.pt"), *CONDITION, "--out", str(out), *args]
    assert _user_error(capsys, argv) == f"abr-tune: error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_a_bad_flag_fails_without_importing_torch(tmp_path):
    code = ("import sys\nfrom abr_tune.sample import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
            "    print('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, "--checkpoint", "x.pt", *CONDITION, "--cfg-scale", "nan",
                           "--out", str(tmp_path / "s.png")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.stdout.strip() == "False" and "--cfg-scale must be a finite number" in proc.stderr


def test_out_that_is_a_directory_or_under_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "d.npz").mkdir()
    (tmp_path / "notes.txt").write_text("keep")
    base = ["--checkpoint", "x.pt", *CONDITION]
    line = _user_error(capsys, [*base, "--out", str(tmp_path / "d.npz"), "--force"])
    assert f"--out '{tmp_path / 'd.npz'}' is a directory" in line
    line = _user_error(capsys, [*base, "--out", str(tmp_path / "notes.txt" / "s.npz")])
    assert f"cannot be written: '{tmp_path / 'notes.txt'}' is not a directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "notes.txt"]
    assert list((tmp_path / "d.npz").iterdir()) == [] and (tmp_path / "notes.txt").read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the permission bits say, so a chmod'ed "
                    "directory is writable; the path-under-a-file test covers an unwritable parent")
def test_out_in_a_read_only_directory_is_refused(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        line = _user_error(capsys, ["--checkpoint", "x.pt", *CONDITION, "--out", str(locked / "sub" / "s.npz")])
        assert f"'{locked}' is not writable" in line and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_checkpoint_without_ema_is_one_error_line(tmp_path):
    path = make_checkpoint(tmp_path / "c.pt", drop=("ema",))
    proc = run_cli("abr_tune.sample", "--checkpoint", path, *CONDITION, "--out", str(tmp_path / "s.npz"))
    assert_user_error(proc, "lacks ema (a training checkpoint holds")
    assert not (tmp_path / "s.npz").exists()


def test_untrained_condition_warns_and_what_ran_is_recorded(tmp_path):
    path = make_checkpoint(tmp_path / "c.pt")  # the tiny synthetic train split: ages up to ~75 years
    out = tmp_path / "s.npz"
    proc = run_cli("abr_tune.sample", "--checkpoint", path, *_condition(age="110"), "--n", "3", "--steps", "2",
                   "--cfg-scale", "2", "--seed", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("abr-tune: warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(
        "abr-tune: warning: age 110 years is outside the range the model was trained on, [0")
    assert "intensity" not in proc.stderr
    data = np.load(out)
    assert data["signals_uv"].shape == (3, 200) and np.isfinite(data["signals_uv"]).all()
    assert (float(data["cfg_scale"]), int(data["sample_steps"]), int(data["seed"])) == (2.0, 2, 5)
    assert "DDIM 2 steps, eta 0, CFG 2, seed 5" in proc.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # the mode any new file gets, not a temp file's 0600
