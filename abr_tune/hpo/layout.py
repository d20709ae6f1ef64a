"""The experiment directory: one home for the name of every file a search writes into it (and the check
that Tune's state in it reads, `tune_state_problem`).

    <experiment>/space.yaml            the resolved space (base inlined, flags applied): --resume reads it
    <experiment>/optuna.db             the Optuna study (SQLite)
    <experiment>/data_fingerprint.json the data the trials train on (data.fingerprint): --resume and
                                       --extend refuse other data
    <experiment>/search_summary.json   every trial's record, the best and the reference trial
    <experiment>/best_config.yaml      a complete train config of the best trial
    <experiment>/retrain/              where best_config.yaml trains (retrain_<id>/ for --trial ID)
    <experiment>/confirm/              the confirmation runs: the top K and the base config over seeds
                                       (confirm_2/, ... when an extended search confirms again)
    <experiment>/transfer/             retrain --top K: full-length runs and transfer.json
    <experiment>/report/               summary.md, index.html and figures
    <experiment>/tracking.json         the tracker chosen with --logger (mlflow or wandb): --resume and
                                       --extend log to it
    <experiment>/mlruns/               --logger mlflow's default store (mlflow.db and artifacts/)
    <experiment>/trial_<id>_<params>/  a trial: train_summary.json, train/ (its run: TensorBoard, checkpoints)
    <experiment>/extend_2/             --extend: a Tune experiment of its own over the same optuna.db, with its
                                       space.yaml (its number of trials) and its trial_<id>_<params>/ dirs
                                       (extend_3/, ... for later extensions); the summary and report cover all
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..training.callbacks import CHECKPOINT_FILE
from .space import SearchSpace

SPACE_FILE = "space.yaml"
STUDY_FILE = "optuna.db"
SUMMARY_FILE = "search_summary.json"
DATA_FILE = "data_fingerprint.json"
BEST_CONFIG_FILE = "best_config.yaml"
RETRAIN_DIR = "retrain"
EXTEND_DIR = "extend"  # extend_2/, extend_3/, ...: the Tune experiment of each --extend, inside the search's
CONFIRM_DIR = "confirm"  # the confirmation stage's Tune experiment (top K and the base over seeds)
TRANSFER_DIR = "transfer"  # retrain --top K: the full-length runs and their comparison
TRANSFER_FILE = "transfer.json"
REPORT_DIR = "report"
TRIAL_SUMMARY_FILE = "train_summary.json"  # train_abr's summary, written in each finished trial dir
TRIAL_RUN = "train"  # each trial's train_abr run: <trial dir>/train/
TUNE_CHECKPOINT_FILE = CHECKPOINT_FILE  # the file inside each of Tune's checkpoint directories
TUNE_RESULT_FILE = "result.json"  # Tune's per-trial log of every reported result (one JSON object a line)


def trial_best_checkpoint(trial_dir: str | Path) -> Path:
    """train_abr's own best checkpoint inside a trial directory."""
    return Path(trial_dir) / TRIAL_RUN / "checkpoints" / f"{TRIAL_RUN}_best.pt"


@dataclass
class Experiment:
    """Where an experiment lives and the resolved space it runs."""

    space: SearchSpace
    name: str
    storage_path: str  # absolute local path or URI
    study_name: str = ""  # the Optuna study's name: the name the experiment was created with
    # The Tune experiment this process runs: "" the search's own, "extend_2", ... an extension inside it;
    # `space` is that Tune experiment's (its num_samples are its own trials).
    run: str = ""
    earlier_samples: int = 0  # the trials the search's earlier Tune experiments planned (an extension's)

    def __post_init__(self) -> None:
        self.study_name = self.study_name or self.name

    @property
    def path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"

    @property
    def local_dir(self) -> Optional[Path]:
        return None if "://" in self.storage_path else Path(self.path)

    @property
    def total_samples(self) -> int:
        """The trials of the whole search: its earlier Tune experiments' and this one's."""
        return self.earlier_samples + self.space.num_samples

    @property
    def tune_storage(self) -> str:
        """Where Tune puts the experiment this process runs (`tune_name` inside it)."""
        return self.path if self.run else self.storage_path

    @property
    def tune_name(self) -> str:
        return self.run or self.name

    @property
    def tune_path(self) -> str:
        return f"{self.tune_storage.rstrip('/')}/{self.tune_name}"

    @property
    def run_dir(self) -> Optional[Path]:
        """The local directory of the Tune experiment this process runs (None on URI storage)."""
        return None if self.local_dir is None else self.local_dir / self.run if self.run else self.local_dir

    @property
    def study_db(self) -> Path:
        """The study sits in the experiment dir; for URI storage, in a local runs/ dir."""
        return (self.local_dir or Path("runs/search_studies").resolve() / self.name) / STUDY_FILE


def extension_dirs(root: Path) -> list[str]:
    """The search's extensions in `root`, in order: extend_2, extend_3, ... (each with its space.yaml)."""
    found, k = [], 2
    while (root / f"{EXTEND_DIR}_{k}" / SPACE_FILE).is_file():
        found.append(f"{EXTEND_DIR}_{k}")
        k += 1
    return found


def rebase(path: Optional[str], old_root: str, new_root: Path) -> Optional[str]:
    """A path the summary stored under the experiment dir `old_root`, moved under `new_root`
    (an experiment copied from a cluster, or moved); other paths are returned unchanged."""
    root = old_root.rstrip("/")
    if path == root:
        return str(new_root)
    if path and path.startswith(root + "/"):
        return str(new_root / path[len(root) + 1:])
    return path


def tune_state_problem(path: Path) -> Optional[str]:
    """What is wrong with Tune's newest experiment state in `path`, or None when it reads.

    Tune rewrites it in place: a full disk can cut it short, and Tune, failing to read it on
    restore, would start the search again from scratch in the same directory.
    """
    states = sorted(path.glob("experiment_state-*.json"))
    if not states:
        return f"'{path}' holds no Tune experiment state (experiment_state-*.json)"
    try:
        json.loads(states[-1].read_text())
    except (OSError, ValueError) as err:
        return f"Tune's state file {states[-1]} is damaged ({type(err).__name__}: cut short by a full disk?)"
    # The searcher's state is pickled beside it: a whole pickle ends with its STOP opcode, b".".
    for pattern in ("searcher-state-*.pkl", "search_gen_state-*.json"):
        newest = sorted(path.glob(pattern))[-1:]
        if newest and not _whole_pickle(newest[0]):
            return f"Tune's searcher state {newest[0]} is damaged (cut short by a full disk?)"
    return None


def _whole_pickle(file: Path) -> bool:
    try:
        with open(file, "rb") as f:
            f.seek(0, 2)
            if f.tell() == 0:
                return False
            f.seek(-1, 2)
            return f.read(1) == b"."
    except OSError:
        return False
