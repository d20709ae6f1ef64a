"""Train configs from YAML and dicts: `a.b: v` overrides, unknown keys with the closest valid key.

Every key a file names is read and honoured (the original pipeline's keys through
`original.translate`), or rejected with the closest valid key. Every problem of a config is
collected and reported at once: one alone keeps its own one-line message, several come as
`N problems in FILE:` with one line each.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError, UserErrors, notice
from . import safe_yaml
from .original import ORIGINAL_KEYS, Translation, notice_lines, translate
from .schema import TrainConfig
from .typed import CONFIG_VOICE, closest, coerce, hints
from .validate import problems_of


def _section(cls: type, raw: Any, key: str, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"config key '{key}' must be a mapping of its sub-keys, got {raw!r}")
        return cls()
    return _build(cls, raw, problems, key + ".")


def _build(cls: type, raw: dict[str, Any], problems: list[str], prefix: str = "") -> Any:
    """`cls` from `raw`; each unknown key or bad value is added to `problems` (its default kept) and skipped."""
    fields = hints(cls)
    section = functools.partial(_section, problems=problems)
    values = {}
    for key, value in raw.items():
        if key not in fields:
            problems.append(unknown_key_message(prefix + str(key)))
            continue
        try:
            values[key] = coerce(value, fields[key], prefix + key, CONFIG_VOICE, section)
        except UserError as err:
            problems.append(str(err))
    built = cls(**values)
    if hasattr(cls, "set_by_user"):  # so that a file's own facts replace defaults but never a value the user set
        built.set_by_user = frozenset(values)
    return built


def raise_problems(problems: list[str], source: str | None = None) -> None:
    """Nothing when `problems` is empty; one problem as its own message; several as one UserErrors."""
    unique = list(dict.fromkeys(problems))
    if len(unique) == 1:
        raise UserError(unique[0])
    if unique:
        raise UserErrors(f"{len(unique)} problems in {source or 'the config'}:", unique)


def all_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, e.g. 'optim.lr'."""
    keys = []
    for name, tp in hints(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += all_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


# Common names from other tools for keys this schema spells differently.
_ALIASES = {"learning_rate": "lr", "epochs": "max_epochs", "num_epochs": "max_epochs", "bs": "batch_size",
            "timesteps": "num_train_steps", "num_layers": "n_layers", "num_heads": "n_heads"}


def unknown_key_message(key: str) -> str:
    section, _, leaf = key.rpartition(".")
    keys = all_keys() + list(ORIGINAL_KEYS)
    alias = [k for k in keys if leaf in _ALIASES and k.rsplit(".", 1)[-1] == _ALIASES[leaf]]
    found = next((k for k in alias if k.startswith(section)), None) or closest(key, keys)
    found = found or next((k for k in keys if k.rsplit(".", 1)[-1] == leaf), None) or closest(leaf, keys, 0.3)
    hint = f"; did you mean '{found}'?" if found else ""
    return f"unknown config key '{key}'{hint} (see the configuration reference in docs/configuration.md)"


# ---------------------------------------------------------------- public API

def from_dict(raw: dict[str, Any] | None, source: str | None = None) -> TrainConfig:
    """Build and validate a TrainConfig from a nested dict (missing keys take defaults); every problem at once."""
    return _checked(raw, [], source)[0]


def _checked(raw: dict[str, Any] | None, problems: list[str], source: str | None) -> tuple[TrainConfig, Translation]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    t = translate(raw)
    problems += t.problems + [unknown_key_message(key) for key in t.unknown]
    cfg = _build(TrainConfig, t.raw, problems)
    problems += problems_of(cfg)
    raise_problems(problems, source)
    return cfg, t


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file with safe_load's types and a bound on aliases (`safe_yaml`); every failure a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: '{path}'; check the path")
    try:
        return safe_yaml.load(path.read_text(encoding="utf-8"))
    except safe_yaml.TooLarge as err:
        raise UserError(f"'{path}' is refused: {err} (nested aliases, a \"billion laughs\" document); "
                        "write the values out instead of through aliases") from None
    except RecursionError:
        raise UserError(f"'{path}' nests mappings or lists too deeply to read; flatten it") from None
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
    return config_from_raw(raw, overrides, str(path) if path else None)


def config_from_raw(raw: dict[str, Any], overrides: str | dict | None = None, source: str | None = None) -> TrainConfig:
    """Apply overrides (a "k: v, ..." string or a dict of dotted keys) to a raw dict and validate; every
    problem at once. The original pipeline's keys are named in one notice (`original.notice_lines`)."""
    problems: list[str] = []
    if overrides:
        parsed = parse_overrides(overrides) if isinstance(overrides, str) else overrides
        raw = apply_overrides(raw, parsed, problems)
    cfg, t = _checked(raw, problems, source)
    found = notice_lines(t, source)
    if found:
        notice(*found)
    return cfg


def parse_overrides(text: str) -> dict[str, Any]:
    """Parse `"optim.lr: 1e-4, trainer.max_epochs: 300"`; each value is read as YAML."""
    try:
        parsed = safe_yaml.load("{" + text + "}")
    except safe_yaml.TooLarge as err:
        raise UserError(f"--override is refused: {err}; write the values out instead of through aliases") from None
    except yaml.YAMLError:
        raise UserError(
            f"cannot parse --override {text!r}; use the form \"optim.lr: 1e-4, trainer.max_epochs: 300\""
        ) from None
    if not isinstance(parsed, dict) or any(v is None and ":" not in text for v in parsed.values()):
        raise UserError(f"cannot parse --override {text!r}; each item must be 'key: value'")
    return {str(k): v for k, v in parsed.items()}


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any], problems: list[str] | None = None
                    ) -> dict[str, Any]:
    """Return a deep copy of `raw` with dotted keys set; an unknown key is raised, or added to `problems`."""
    out = _deep_copy(raw)
    valid = {*all_keys(), *ORIGINAL_KEYS}
    for dotted, value in overrides.items():
        if dotted not in valid:
            if problems is None:
                raise UserError(unknown_key_message(dotted))
            problems.append(unknown_key_message(dotted))
            continue
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
