"""Reading a search-space YAML file into a SearchSpace; every setting checked before Ray starts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

from ..config import load_yaml
from ..config.typed import SPACE_VOICE, coerce, hints
from ..errors import UserError
from ..metrics_registry import METRICS, mode_of
from .params import parse_params, reject_unknown
from .space import (
    FILE_DATA_METRIC,
    ConfirmSpec,
    ResourcesSpec,
    SchedulerSpec,
    SearchSpace,
    SearchSpec,
)

WAVES = " (wave metrics as sample/wave_<the species' primary wave>_..., e.g. sample/wave_i_latency_mae_ms for mouse)"


def load_space(path: str | Path) -> SearchSpace:
    """Read and statically validate a search-space YAML file."""
    path = Path(path)
    raw = load_yaml(path)
    _refuse_duplicate_keys(path)
    if not isinstance(raw, dict):
        raise UserError(f"search space '{path}' must be a mapping with at least 'params'")
    return parse_space(raw, path)


def _refuse_duplicate_keys(path: Path) -> None:
    """YAML lets a key repeat and keeps the last value: a range written twice would search the one the
    user may not mean. Refused, naming the key and both lines (the file already read as YAML)."""
    import yaml

    nodes = [yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)]
    while nodes:
        node = nodes.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        raise UserError(f"search space '{path}': key '{key.value}' appears twice (lines "
                                        f"{seen[key.value] + 1} and {key.start_mark.line + 1}); keep one")
                    seen[key.value] = key.start_mark.line
            nodes.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            nodes.extend(node.value)


def parse_space(raw: dict[str, Any], path: Optional[Path] = None) -> SearchSpace:
    """Build a SearchSpace from its YAML mapping (`path` anchors a relative base_config)."""
    names = [f.name for f in dataclasses.fields(SearchSpace) if f.name not in ("path", "condition_values")]
    reject_unknown(raw, names, "search space field")
    if "base_config" in raw and "base" in raw:
        raise UserError("search space: give either base_config (a file) or base (inline), not both")
    kwargs: dict[str, Any] = {"path": path, "params": parse_params(raw.get("params"))}
    for name, cls in (("scheduler", SchedulerSpec), ("search", SearchSpec), ("resources", ResourcesSpec),
                      ("confirm", ConfirmSpec)):
        kwargs[name] = _section(cls, raw.get(name) or {}, name)
    for name in ("description", "metric", "mode", "num_samples", "max_concurrent", "constraints"):
        if name in raw:
            kwargs[name] = coerce(raw[name], hints(SearchSpace)[name], name, SPACE_VOICE)
    if raw.get("metrics"):
        if "metric" in raw and raw["metric"] != _names(raw["metrics"])[0]:
            raise UserError("search space: give either metric (one objective) or metrics (several), not both")
        kwargs.update(with_metrics(_names(raw["metrics"]), raw.get("mode")))
    if "base_config" in raw:
        kwargs["base_config"] = _find_base(raw["base_config"], path)
    for name in ("base", "overrides"):
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            raise UserError(f"search space field '{name}' must be a mapping, got {value!r}")
        kwargs[name] = value
    space = SearchSpace(**kwargs)
    data = space.base_raw().get("data") or {}
    if "metric" not in raw and not raw.get("metrics") and data.get("source") == "file" \
            and data.get("species", "human") != "human":  # the clinic's files keep val/mse_v
        space = dataclasses.replace(space, **with_metrics([FILE_DATA_METRIC], raw.get("mode")))
    check_settings(space)
    refuse_searched(space.overrides, space, "overrides")
    return space


def _names(entries: Any) -> list[str]:
    """`metrics:` entries: a metric name, or {name: mode} to spell the mode out (it must be the metric's)."""
    if not isinstance(entries, list):
        raise UserError(f"search space field 'metrics' must be a list of metric names, got {entries!r}")
    names = []
    for entry in entries:
        if isinstance(entry, dict) and len(entry) == 1:
            (name, mode), = entry.items()
            if mode_of(name) is not None and mode != mode_of(name):
                raise UserError(f"search space: metric {name!r} improves when it goes "
                                f"{'down' if mode_of(name) == 'min' else 'up'}; its mode is {mode_of(name)}")
            entry = name
        if not isinstance(entry, str):
            raise UserError(f"search space: metrics entry {entry!r} must be a metric name (e.g. val/mse_v)")
        names.append(entry)
    return names


def with_metrics(names: list[str], mode: Any = None) -> dict[str, Any]:
    """The space fields for these objectives: one is `metric` alone, several are `metrics`."""
    for name in names:
        if mode_of(name) is None:
            raise UserError(f"search space: metric {name!r} is not reported every epoch; use one of "
                            f"{', '.join(METRICS)}{WAVES}")
    if len(set(names)) != len(names):
        raise UserError(f"search space: metrics {names} name one metric twice")
    if mode is not None and mode != mode_of(names[0]):
        raise UserError(f"search space: mode {mode!r} contradicts the primary metric {names[0]!r} "
                        f"({mode_of(names[0])}); leave mode out with metrics")
    return {"metric": names[0], "mode": mode_of(names[0]), "metrics": names if len(names) > 1 else []}


def refuse_searched(overrides: dict[str, Any], space: SearchSpace, where: str) -> None:
    """A fixed value for a searched key would be replaced in every trial: refuse it rather than lose it."""
    searched = sorted({k for p in space.params for k in p.keys} & set(overrides))
    if searched:
        raise UserError(f"{where} sets '{searched[0]}', which is searched by the space; remove it from {where} "
                        "or from params")


def _find_base(value: Any, path: Optional[Path]) -> Path:
    if not isinstance(value, str) or not value:
        raise UserError(f"base_config must be a path to a train config YAML, got {value!r}")
    candidates = ([path.parent / value] if path else []) + [Path(value)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = " or ".join(f"'{c}'" for c in candidates)
    raise UserError(f"base_config '{value}' not found (looked for {looked}); fix the path")


def check_settings(space: SearchSpace) -> None:
    """Range checks of the search settings (also run after flags replace them)."""
    s = space.scheduler
    checks = [
        (mode_of(space.metric) is not None,
         f"metric {space.metric!r} is not reported every epoch; use one of {', '.join(METRICS)}{WAVES}"),
        (mode_of(space.metric) in (None, space.mode),
         f"metric {space.metric!r} improves when it goes {'down' if space.mode == 'max' else 'up'}; "
         f"set mode: {mode_of(space.metric)}"),
        (space.num_samples >= 1, f"num_samples must be >= 1, got {space.num_samples}"),
        (space.max_concurrent >= 1, f"max_concurrent must be >= 1, got {space.max_concurrent}"),
        (s.max_t is None or s.max_t >= 1, f"scheduler.max_t must be >= 1, got {s.max_t}"),
        (s.grace_period >= 1, f"scheduler.grace_period must be >= 1, got {s.grace_period}"),
        (s.max_t is None or s.grace_period <= s.max_t,
         f"scheduler.grace_period ({s.grace_period}) must be <= max_t ({s.max_t})"),
        (s.reduction_factor > 1, f"scheduler.reduction_factor must be > 1, got {s.reduction_factor}"),
        (space.search.n_startup_trials >= 0, "search.n_startup_trials must be >= 0"),
        (space.search.population_size >= 2, f"search.population_size must be >= 2, got "
                                            f"{space.search.population_size}"),
        (space.search.sampler != "nsga2" or space.multi,
         "search.sampler: nsga2 is a multi-objective sampler; give several metrics or use tpe"),
        (0 <= space.search.seed < 2**32, f"search.seed must be in [0, 2**32), got {space.search.seed}"),
        (space.resources.cpus_per_trial > 0, "resources.cpus_per_trial must be > 0"),
        (space.resources.gpus_per_trial >= 0, "resources.gpus_per_trial must be >= 0"),
        (0 <= space.confirm.top_k <= 20, f"confirm.top_k must be in [0, 20], got {space.confirm.top_k}"),
        (2 <= space.confirm.seeds <= 20, f"confirm.seeds must be in [2, 20] (an interval needs 2), "
                                         f"got {space.confirm.seeds}"),
        (0 < space.confirm.alpha < 0.5, f"confirm.alpha must be in (0, 0.5), got {space.confirm.alpha}"),
        (space.confirm.spread is None or 0 < space.confirm.spread < 1,
         f"confirm.spread (the paired seed spread ÷ the base value) must be in (0, 1), got {space.confirm.spread}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"search space: {message}")
    space.parsed_constraints()  # each one's syntax, metric and bound
    tpe_options = [k for k in ("multivariate", "group", "constant_liar") if getattr(space.search, k)]
    if tpe_options and space.search.sampler != "tpe":
        raise UserError(f"search space: search.{tpe_options[0]} is a TPE option; set search.sampler: tpe or remove it")
    if space.search.group and not space.search.multivariate:
        raise UserError("search space: search.group needs search.multivariate: true (Optuna's grouped TPE is "
                        "multivariate)")
    if not isinstance(space.search.points_to_evaluate, list):
        raise UserError("search.points_to_evaluate must be a list of 'base' or {param: value} mappings")


def _section(cls: type, raw: Any, name: str) -> Any:
    if not isinstance(raw, dict):
        raise UserError(f"search space field '{name}' must be a mapping, got {raw!r}")
    fields = hints(cls)
    reject_unknown(raw, list(fields), f"field of {name}")
    return cls(**{k: coerce(v, fields[k], f"{name}.{k}", SPACE_VOICE) for k, v in raw.items()})
