"""Train configs from YAML and dicts: `a.b: v` overrides, unknown keys with the closest valid key.

Every key a file names is read and honoured, or rejected with the closest valid key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from .schema import TrainConfig
from .typed import CONFIG_VOICE, closest, coerce, hints
from .validate import validate


def _section(cls: type, raw: Any, key: str) -> Any:
    if not isinstance(raw, dict):
        raise UserError(f"config key '{key}' must be a mapping of its sub-keys, got {raw!r}")
    return _build(cls, raw, key + ".")


def _build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    fields = hints(cls)
    for key in raw:
        if key not in fields:
            raise UserError(unknown_key_message(prefix + str(key)))
    return cls(**{k: coerce(v, fields[k], prefix + k, CONFIG_VOICE, _section) for k, v in raw.items()})


def all_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, e.g. 'optim.lr'."""
    keys = []
    for name, tp in hints(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += all_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


# Keys of the original pipeline that have no meaning here: say why instead of guessing.
_RETIRED_KEYS = {
    "loader.num_workers": "the dataset is held on the training device, so there are no loader workers",
    "loader.pin_memory": "the dataset is copied to the training device once, so there is nothing to pin",
}


# Common names from other tools for keys this schema spells differently.
_ALIASES = {"learning_rate": "lr", "epochs": "max_epochs", "num_epochs": "max_epochs", "bs": "batch_size",
            "timesteps": "num_train_steps", "num_layers": "n_layers", "num_heads": "n_heads"}


def unknown_key_message(key: str) -> str:
    if key in _RETIRED_KEYS:
        return f"config key '{key}' is not used by abr-tune ({_RETIRED_KEYS[key]}); remove it"
    section, _, leaf = key.rpartition(".")
    keys = all_keys()
    alias = [k for k in keys if leaf in _ALIASES and k.rsplit(".", 1)[-1] == _ALIASES[leaf]]
    found = next((k for k in alias if k.startswith(section)), None) or closest(key, keys)
    found = found or next((k for k in keys if k.rsplit(".", 1)[-1] == leaf), None) or closest(leaf, keys, 0.3)
    hint = f"; did you mean '{found}'?" if found else ""
    return f"unknown config key '{key}'{hint} (see the configuration reference in README.md)"


# ---------------------------------------------------------------- public API

def from_dict(raw: dict[str, Any] | None) -> TrainConfig:
    """Build and validate a TrainConfig from a nested dict (missing keys take defaults)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    cfg = _build(TrainConfig, raw)
    validate(cfg)
    return cfg


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file with safe_load, turning every failure into a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: '{path}'; check the path")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"'{path}' is not a YAML text file (byte {err.start} is not UTF-8); "
                        "save it as UTF-8 text") from None
    except OSError as err:
        raise UserError(f"cannot read '{path}' ({err.strerror or err}); check the path and its permissions") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"'{path}' is not valid YAML{where}: {problem}") from None


def load_config(path: str | Path | None = None, overrides: str | dict | None = None) -> TrainConfig:
    """Load a YAML config file (or the defaults), apply overrides, validate."""
    raw = load_yaml(path) if path else {}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"'{path}' must hold a mapping of config sections")
    return config_from_raw(raw, overrides)


def config_from_raw(raw: dict[str, Any], overrides: str | dict | None = None) -> TrainConfig:
    """Apply overrides (a "k: v, ..." string or a dict of dotted keys) to a raw dict and validate."""
    if overrides:
        parsed = parse_overrides(overrides) if isinstance(overrides, str) else overrides
        raw = apply_overrides(raw, parsed)
    return from_dict(raw)


def parse_overrides(text: str) -> dict[str, Any]:
    """Parse `"optim.lr: 1e-4, trainer.max_epochs: 300"`; each value is read as YAML."""
    try:
        parsed = yaml.safe_load("{" + text + "}")
    except yaml.YAMLError:
        raise UserError(
            f"cannot parse --override {text!r}; use the form \"optim.lr: 1e-4, trainer.max_epochs: 300\""
        ) from None
    if not isinstance(parsed, dict) or any(v is None and ":" not in text for v in parsed.values()):
        raise UserError(f"cannot parse --override {text!r}; each item must be 'key: value'")
    return {str(k): v for k, v in parsed.items()}


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a deep copy of `raw` with dotted keys set (unknown keys rejected)."""
    out = _deep_copy(raw)
    valid = set(all_keys())
    for dotted, value in overrides.items():
        if dotted not in valid:
            raise UserError(unknown_key_message(dotted))
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return out


def _deep_copy(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in raw.items()}


def get_key(cfg: TrainConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def diff(cfg: TrainConfig, base: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ: {key: (base value, cfg value)}."""
    return {
        k: (get_key(base, k), get_key(cfg, k))
        for k in all_keys()
        if get_key(base, k) != get_key(cfg, k)
    }
