"""How a caller (Ray Tune, a notebook, a test) watches train_abr and hands it a checkpoint.

train_abr knows nothing about its caller: it calls `report` once per epoch with the epoch's
metrics and a directory holding that epoch's full checkpoint (`CHECKPOINT_FILE`), and asks
`restore_dir` once at start for a directory to resume from. A caller that wants the run to end
early (a scheduler stopping a trial) raises `StopRun` from `report`: train_abr then returns its
summary with the exception's message as the status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

CHECKPOINT_FILE = "checkpoint.pt"  # the file inside every reported checkpoint directory


class StopRun(Exception):
    """Raised by `Reporter.report` to end the run after this epoch; str(err) becomes the run's status."""


class Reporter(Protocol):
    def restore_dir(self) -> Path | None:
        """A directory holding CHECKPOINT_FILE to resume from, or None to start fresh."""

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        """Receive one epoch's metrics and its checkpoint directory (valid during the call).

        `checkpoint_dir` is None only when a run diverges before any good checkpoint exists.
        Raise StopRun to end the run here.
        """


class Tracker(Protocol):
    """Watches a run without driving it (an experiment tracker such as MLflow): never stops or restores it."""

    def start(self, cfg, resumed: bool) -> None:
        """The run is set up (`resumed`: it continues from a checkpoint)."""

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """One finished epoch's metrics."""

    def finish(self, summary: dict | None) -> None:
        """The run ended with this summary (None: it raised)."""
