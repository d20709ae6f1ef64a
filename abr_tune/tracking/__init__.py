"""Opt-in experiment tracking in the trackers users already run: MLflow and Weights & Biases.

`python -m abr_tune.train --logger mlflow` logs the run through `TrainTracker` (an observer of
train_abr's epochs); `python -m abr_tune.search --logger mlflow` logs every trial through Ray
Tune's own logger callbacks and the best configuration at the end (`search_tracking`).
Neither package is a dependency: `pip install 'abr-tune[mlflow]'` or `'abr-tune[wandb]'`.
"""

from .backends import LOGGERS, TrackingChoice, add_tracking_flags, choice_from_args, require

__all__ = ["LOGGERS", "TrackingChoice", "add_tracking_flags", "choice_from_args", "require"]
