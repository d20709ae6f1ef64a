"""Every CLI on bad input: exit 2, one `abr-tune: error:` line, no traceback, nothing written.

One table, one test. Each row is (what is wrong, command, arguments built in the workspace,
what the error line must say). Each command's first row runs as a child process, as a user runs
it; the others through the command's `main(argv)` in the test's process. All share one workspace
as their CWD; it holds a finished tiny training run, and every file and directory in it is
fingerprinted (size, mtime, sha256) before and after: no command may add, change or remove
anything. Several rows repeat cases tested elsewhere; this table is where they are all seen.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import assert_user_error, free_port, run_cli, run_main, tiny_config

CKPT = "runs/tiny/checkpoints/tiny_last.pt"  # the workspace's finished run
COND = ["--age", "30", "--intensity", "80", "--rate", "21.1", "--fmp", "3"]
LR = {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 1e-2}}


class Workspace:
    """Writes the bad (and good) inputs of the table; every method returns a path relative to `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.n = 0
        self.busy = socket.create_server(("127.0.0.1", 0))  # a port something already listens on

    def _new(self, name: str) -> Path:
        self.n += 1
        path = self.root / "inputs" / f"{self.n:02d}_{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def text(self, name: str, content: str | bytes) -> str:
        path = self._new(name)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path.relative_to(self.root))

    def config(self, **sections) -> str:
        """The conftest tiny config with `sections` merged in; its run 'new' (not the workspace's 'tiny')."""
        return self.text("cfg.yaml", yaml.safe_dump(tiny_config(self.root, **{"exp_name": "new", **sections})))

    def data(self, path: str) -> str:
        return self.config(data={"source": "file", "path": path})

    def npz(self, name: str, length: int = 200, bad: float | None = None, static_cols: int = 4) -> str:
        rng = np.random.default_rng(0)
        signals = rng.normal(0, 0.1, (48, length)).astype(np.float32)
        if bad is not None:
            signals[5, 17] = bad
        static = np.tile([[30.0, 80.0, 21.1, 3.0][:static_cols]], (48, 1)).astype(np.float32)
        path = self._new(name)
        np.savez(path, signals=signals, static=static, patient_id=np.arange(48) // 4)
        return str(path.relative_to(self.root))

    def pickle(self) -> str:
        record = {"patient_id": 1, "static_params": [30, 80, 21.1, 3], "signal": [0.0] * 200}
        return self.text("abr.pkl", pickle.dumps({"data": [record] * 8}))

    def space(self, params: dict | None = None, **fields) -> str:
        """A search space over LR (or `params`), its base the tiny config unless `fields` name a base_config."""
        raw = {"num_samples": 2, "params": LR if params is None else params, **fields}
        if "base_config" not in raw:
            raw["base"] = tiny_config(self.root)
        return self.text("space.yaml", yaml.safe_dump(raw))

    def space_data(self, path: str) -> str:
        return self.space(overrides={"data.source": "file", "data.path": path})

    def truncated(self) -> str:
        return self.text("truncated.pt", (self.root / CKPT).read_bytes()[:5000])

    def experiment(self, files: dict[str, str]) -> str:
        """A directory holding `files` (name → text): a broken or unfinished experiment."""
        path = self._new("experiment")
        path.mkdir()
        for name, content in files.items():
            (path / name).write_text(content)
        return str(path.relative_to(self.root))


SUMMARY, BEST = "search_summary.json", "best_config.yaml"
CASES = [
    ("malformed YAML", "train", lambda w: ["--config", w.text("bad.yaml", "optim: [1,\n")], "not valid YAML at line"),
    ("unknown key", "train", lambda w: ["--config", w.config(optim={"lrate": 1e-3})], "did you mean 'optim.lr'?"),
    ("zero epochs", "train", lambda w: ["--config", w.config(trainer={"max_epochs": 0})], "max_epochs must be >= 1"),
    ("data file missing", "train", lambda w: ["--config", w.data("none.npz")], "data file not found: 'none.npz'"),
    ("data file damaged", "train", lambda w: ["--config", w.data(w.text("d.npz", b"PK\x03\x04"))], "not a valid .npz"),
    ("T = 199", "train", lambda w: ["--config", w.data(w.npz("t199.npz", length=199))], "have 199 samples"),
    ("NaN in signals", "train", lambda w: ["--config", w.data(w.npz("nan.npz", bad=np.nan))], "NaN or Inf in 1 rec"),
    ("pickle, no opt-in", "train", lambda w: ["--config", w.data(w.pickle())], "data.allow_pickle: true"),
    ("incompatible model", "train", lambda w: ["--config", w.config(exp_name="tiny", model={"d_model": 64}),
                                               "--resume", CKPT], "cannot change model.d_model on resume"),
    ("resume into another run", "train", lambda w: ["--config", w.config(), "--resume", CKPT],
     "a resume continues its own run and never writes into another"),
    ("truncated checkpoint", "train", lambda w: ["--resume", w.truncated()], "is corrupt, truncated"),
    ("run already exists", "train", lambda w: ["--config", w.config(exp_name="tiny")], "tiny_best.pt' already exists"),
    ("YAML not text", "search", lambda w: ["--space", w.space(base_config=w.text("b.yaml", b"\xff"))], "not a YAML"),
    ("wrong type", "search", lambda w: ["--space", w.space(overrides={"trainer.max_epochs": "many"})], "of type int"),
    ("negative batch size", "search", lambda w: ["--space", w.space(), "--override", "loader.batch_size: -4"],
     "loader.batch_size must be >= 1"),
    ("n_heads ∤ d_model", "search", lambda w: ["--space", w.space(overrides={"model.n_heads": 3})], "(3) must divide"),
    ("low >= high", "search", lambda w: ["--space", w.space({"optim.lr": {"dist": "uniform", "low": .1, "high": .1}})],
     "low (0.1) must be < high (0.1)"),
    ("log range low <= 0", "search", lambda w: ["--space", w.space({"optim.lr": {"dist": "loguniform", "low": 0,
                                                                                 "high": .1}})], "needs low > 0"),
    ("unknown dist", "search", lambda w: ["--space", w.space({"optim.lr": {"dist": "normal"}})], "unknown dist 'norm"),
    ("empty params", "search", lambda w: ["--space", w.space({})], "search space has no params"),
    ("param not in schema", "search", lambda w: ["--space", w.space({"optim.lrate": LR["optim.lr"]})],
     "'optim.lrate' is not a config key; did you mean 'optim.lr'?"),
    ("data not UTF-8 CSV", "search", lambda w: ["--space", w.space_data(w.text("d.csv", b"\xff\xfe"))], "as CSV"),
    ("data wrong extension", "search", lambda w: ["--space", w.space_data(w.text("d.txt", "1"))], "unsupported data"),
    ("Inf in signals", "search", lambda w: ["--space", w.space_data(w.npz("inf.npz", bad=np.inf))], "NaN or Inf in 1"),
    ("3 static columns", "search", lambda w: ["--space", w.space_data(w.npz("s3.npz", static_cols=3))], "has 3 col"),
    ("seed out of range", "search", lambda w: ["--space", w.space(), "--seed", "-1"], "search.seed must be in"),
    ("storage is a file", "search", lambda w: ["--space", w.space(), "--storage-path", CKPT], "is not a directory"),
    ("dashboard port taken", "search", lambda w: ["--space", w.space(), "--dashboard-port",
                                                  str(w.busy.getsockname()[1])], "is already in use"),
    ("--resume not an exp.", "search", lambda w: ["--resume", "runs/tiny"], "is not an abr-tune search experiment"),
    ("--address unreachable", "search", lambda w: ["--space", w.space(), "--address", f"127.0.0.1:{free_port()}"],
     "cannot reach the Ray cluster"),
    ("corrupt checkpoint", "sample", lambda w: ["--checkpoint", w.truncated(), *COND], "is corrupt, truncated"),
    ("--out exists", "sample", lambda w: ["--checkpoint", CKPT, *COND, "--out", w.text("s.png", "")], "already exists"),
    ("--data T = 201", "evaluate", lambda w: ["--checkpoint", CKPT, "--data", w.npz("e201.npz", length=201)],
     "have 201 samples"),
    ("--out exists", "evaluate", lambda w: ["--checkpoint", CKPT, "--out", "runs"], "already exists"),
    ("not an experiment", "retrain", lambda w: ["--experiment", "runs/tiny"], f"has no {BEST} and {SUMMARY}"),
    ("summary damaged", "retrain", lambda w: ["--experiment", w.experiment({BEST: "seed: 1", SUMMARY: "{"})],
     "is not a readable search summary"),
    ("search unfinished", "report", lambda w: [w.experiment({"space.yaml": "params: {}"})], "has not finished"),
    ("summary damaged", "report", lambda w: [w.experiment({"space.yaml": "", SUMMARY: '{"tri'})],
     "is not a readable search summary"),
]


def _fingerprint(root: Path) -> dict[str, tuple]:
    """Every path under root: directories by name, files by (size, mtime, sha256)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            out[str(path.relative_to(root))] = ("dir",)
        else:
            st, digest = path.stat(), hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from abr_tune.train import train_abr

    root = tmp_path_factory.mktemp("ws")
    train_abr(tiny_config(root, trainer={"max_epochs": 1, "sample_every_epochs": 5}))
    w = Workspace(root)
    yield w
    w.busy.close()


@pytest.mark.timeout(300)
def test_every_bad_input_is_one_error_line_and_writes_nothing(workspace, capsys, monkeypatch):
    assert len(CASES) >= 20 and {c[1] for c in CASES} == {"train", "search", "sample", "evaluate", "retrain", "report"}
    commands = [(label, module, [str(a) for a in make(workspace)], fragment) for label, module, make, fragment in CASES]
    before = _fingerprint(workspace.root)
    assert CKPT in before
    # Each command's first row as a user runs it (a child process: no traceback reaches the terminal), the
    # rest through its main(argv) in this process, in the workspace, the environment restored after each.
    first: dict[str, int] = {}
    for i, (_, module, _, _) in enumerate(commands):
        first.setdefault(module, i)
    with ThreadPoolExecutor(max_workers=2) as pool:
        children = {i: pool.submit(run_cli, f"abr_tune.{commands[i][1]}", *commands[i][2], cwd=workspace.root,
                                   timeout=120) for i in first.values()}
        monkeypatch.chdir(workspace.root)
        results = {}
        for i, (_, module, args, _) in enumerate(commands):
            if i not in children:
                env = dict(os.environ)
                results[i] = run_main(capsys, f"abr_tune.{module}", *args)
                os.environ.clear()
                os.environ.update(env)
        results.update({i: child.result() for i, child in children.items()})
    failures = []
    for i, (label, module, args, fragment) in enumerate(commands):
        proc = results[i]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("abr-tune: error:")]
        how = "child" if i in children else "main()"
        print(f"{module:8} {label:22} {how:6} rc={proc.returncode} {errors[0] if errors else proc.stderr[-300:]}")
        try:
            assert_user_error(proc, fragment)
        except AssertionError as err:
            failures.append(f"{module} {label} {args}: {err}")
    assert not failures, "\n".join(failures)
    assert _fingerprint(workspace.root) == before  # nothing added, changed or removed
