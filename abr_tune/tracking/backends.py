"""Which tracker a command logs to, whether its package is installed, and where MLflow stores runs.

MLflow's default store is `<home>/mlruns/`: a SQLite database (`mlflow.db`, MLflow's own
schema) and the artifacts beside it (`artifacts/`). MLflow 3 keeps its plain-directory store
in maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE is set, so the local store
is the database MLflow recommends. `--tracking-uri` sends the runs anywhere MLflow can
(`http://host:5000`, `sqlite:///...`, `databricks`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import netrc
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

LOGGERS = ("mlflow", "wandb")
_NEEDS = {"mlflow": ("mlflow", "MLflow"), "wandb": ("wandb", "Weights & Biases")}
STORE_DIR = "mlruns"  # the default MLflow store, inside the run's or the experiment's directory
STORE_DB = "mlflow.db"
WANDB_HOST = "api.wandb.ai"
STAGE_TAG = "abr_tune.stage"  # search, or the later stage (e.g. confirm) a run belongs to


@dataclass(frozen=True)
class TrackingChoice:
    """The tracker a command logs to: `mlflow` (to `tracking_uri`, or a local store) or `wandb`."""

    logger: str
    tracking_uri: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrackingChoice:
        raw = json.loads(text)
        return cls(logger=raw["logger"], tracking_uri=raw.get("tracking_uri"))


def add_tracking_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--logger", choices=LOGGERS,
                   help=f"also log {what} to MLflow or Weights & Biases (pip install 'abr-tune[mlflow]' or "
                        "'abr-tune[wandb]'); W&B runs offline unless you are logged in")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI for --logger mlflow (default: a local store, mlruns/ in the "
                        f"{'run' if what == 'the run' else 'experiment'}'s directory)")


def choice_from_args(args: argparse.Namespace) -> TrackingChoice | None:
    """The tracker the flags ask for, its package checked before any work (None: no tracking)."""
    if args.tracking_uri and args.logger != "mlflow":
        raise UserError("--tracking-uri is MLflow's; add --logger mlflow (or drop --tracking-uri)")
    if not args.logger:
        return None
    require(args.logger)
    return TrackingChoice(args.logger, args.tracking_uri)


def require(logger: str) -> Any:
    """The tracker's package, or a UserError that says how to install it."""
    module, name = _NEEDS[logger]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise UserError(f"--logger {logger} needs {name}: pip install 'abr-tune[{logger}]' ({err})") from None


def mlflow_uri(choice: TrackingChoice, home: Path) -> str:
    """The URI the runs go to: the user's, else the SQLite store in `<home>/mlruns/`."""
    if choice.tracking_uri:
        return choice.tracking_uri
    return f"sqlite:///{(home / STORE_DIR / STORE_DB).resolve()}"


def mlflow_experiment(choice: TrackingChoice, home: Path, name: str) -> tuple[str, str]:
    """(tracking URI, experiment id) of the MLflow experiment `name`, created if new: in the local
    store its artifacts go to `<home>/mlruns/artifacts/`, elsewhere where the server puts them."""
    require("mlflow")
    from mlflow.tracking import MlflowClient

    uri = mlflow_uri(choice, home)
    artifacts = None
    if not choice.tracking_uri:
        (home / STORE_DIR).mkdir(parents=True, exist_ok=True)
        artifacts = (home / STORE_DIR / "artifacts").resolve().as_uri()
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return uri, found.experiment_id
    return uri, client.create_experiment(name, artifact_location=artifacts)


def wandb_mode() -> str:
    """W&B's mode: the user's WANDB_MODE, `online` when logged in (WANDB_API_KEY or `wandb login`'s
    netrc entry), else `offline` (runs kept locally; `wandb sync` uploads them later). Sets WANDB_MODE."""
    mode = os.environ.get("WANDB_MODE")
    if not mode:
        mode = "online" if os.environ.get("WANDB_API_KEY") or _netrc_has(WANDB_HOST) else "offline"
        os.environ["WANDB_MODE"] = mode  # Ray's W&B callback and its logging actors read it
    return mode


def _netrc_has(host: str) -> bool:
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys, values as text (MLflow's limit: 6000 characters)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out
