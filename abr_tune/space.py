"""Search-space YAML → a validated, typed space and an Optuna define-by-run function.

Schema (every field optional except `params`; unknown fields are errors):

    base_config: ../configs/cpu.yaml  # train config the params modify: relative to this
                                      # file, else to the CWD (default: built-in defaults)
    base: {model: {d_model: 64}}      # or an inline nested config instead of base_config
    overrides: {trainer.sample_every_epochs: 2}   # dotted keys set on the base, not searched
    description: "what this space is for"
    metric: val/mse_v                 # reported metric to optimise (default val/mse_v)
    mode: min                         # min | max (default min)
    num_samples: 8                    # trials
    max_concurrent: 2                 # trials running at once
    scheduler: {max_t: 6, grace_period: 1, reduction_factor: 2}   # ASHA, in epochs
    search: {sampler: tpe, seed: 0, n_startup_trials: 4, points_to_evaluate: [base]}
    resources: {cpus_per_trial: 1, gpus_per_trial: 0}   # fractions allowed
    params:                           # dotted config key -> distribution
      optim.lr: {dist: loguniform, low: 1.0e-4, high: 3.0e-3}
      loss.stft_weight: {dist: uniform, low: 0.0, high: 0.5}
      loss.stft.n_fft: {dist: choice, values: [32, 64], when: "loss.stft_weight > 0"}
      model.d_model,model.n_heads: {dist: choice, values: [[64, 4], [128, 8]]}

Distributions: `uniform`, `loguniform` (low > 0), `quniform` (step `q`), `qloguniform`
(log-uniform, rounded to a multiple of `q`), `int` (optional step `q`), `logint`
(low >= 1), `choice` (`values`). `when: "<key> <op> <number>"` (op one of
< <= > >= == !=) samples a param only when the condition holds on the trial's config
(params are sampled in file order, so a condition may name an earlier param).
A key naming several config keys separated by commas is a *joint choice*: each value
lists one value per key, so only the listed combinations (e.g. heads that divide the
width) are ever proposed. `points_to_evaluate` entries are `base` (the base config's
own values of every param: "try the default first") or a mapping param → value.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import operator
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .config import TrainConfig, all_keys, apply_overrides, from_dict, get_key, load_yaml
from .errors import UserError

Dist = Literal["uniform", "loguniform", "quniform", "qloguniform", "int", "logint", "choice"]
FLOAT_DISTS = ("uniform", "loguniform", "quniform", "qloguniform")
INT_DISTS = ("int", "logint")
# Set per trial by the search itself; searching them would break the run layout.
RESERVED_KEYS = {
    "device": "trials use the device Tune reserves for them (--gpus-per-trial)",
    "log_dir": "each trial logs into its own trial directory",
    "exp_name": "each trial's run is named 'train'",
    "trainer.max_epochs": "set scheduler.max_t (or --max-epochs) instead",
    "trainer.ckpt_dir": "checkpoints live in the trial directory",
    "trainer.progress": "trials run without progress bars",
    "advanced.torch_threads": "set from resources.cpus_per_trial",
}
# Metrics a search may optimise, with the direction in which they improve. ASHA needs its
# metric in every report, so a `sample/*` metric makes every trial sample every epoch.
METRIC_MODES = {
    "val/mse_v": "min", "epoch/train_loss_avg": "min", "sample/corr": "max", "sample/mse_uv": "min",
    "sample/wave_v_latency_mae_ms": "min", "sample/wave_v_missed_frac": "min", "sample/detection_acc": "max",
    "sample/spectral_distance_db": "min",
}
METRICS = tuple(METRIC_MODES)
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


# ---------------------------------------------------------------- conditions

@dataclass(frozen=True)
class Condition:
    """`<key> <op> <number>`: parsed with a regex, evaluated with `operator`, never eval'd."""

    key: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: Any, where: str) -> Condition:
        match = _CONDITION.match(str(text))
        if not match:
            raise UserError(f"{where}: cannot read when: {text!r}; use the form \"loss.stft_weight > 0\"")
        key, op, raw = match.groups()
        value = yaml.safe_load(raw)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)):
            raise UserError(f"{where}: when: {text!r} must compare with a number, got {raw!r}")
        return cls(key, op, float(value))

    def holds(self, actual: Any) -> bool:
        return bool(_OPS[self.op](float(actual), self.value))

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.value:g}"


# ---------------------------------------------------------------- params

@dataclass(frozen=True)
class Param:
    """One searched parameter; `name` is its Optuna name (the dotted key, or 'a,b' joint)."""

    name: str
    keys: tuple[str, ...]
    dist: Dist
    low: Optional[float] = None
    high: Optional[float] = None
    q: Optional[float] = None
    values: tuple[Any, ...] = ()
    when: Optional[Condition] = None

    @property
    def labelled(self) -> bool:
        """Choices that are lists (joint or list-valued keys) go to Optuna as string labels."""
        return any(isinstance(v, (list, tuple, dict)) for v in self.values)

    def labels(self) -> list[Any]:
        return [_label(v) for v in self.values] if self.labelled else list(self.values)

    def suggest(self, trial: Any) -> Any:
        d, name = self.dist, self.name
        if d == "choice":
            return trial.suggest_categorical(name, self.labels())
        if d in INT_DISTS:
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.q or 1), log=d == "logint")
        step = self.q if d == "quniform" else None
        return trial.suggest_float(name, self.low, self.high, step=step, log=d in ("loguniform", "qloguniform"))

    def decode(self, value: Any) -> dict[str, Any]:
        """The dotted config overrides an Optuna value of this param stands for."""
        if self.dist == "choice":
            value = self.values[self.labels().index(value)] if self.labelled else value
        elif self.dist in ("quniform", "qloguniform"):
            value = round(round(value / self.q) * self.q, 12)
        elif self.dist in INT_DISTS:
            value = int(value)
        if len(self.keys) == 1:
            return {self.keys[0]: value}
        return dict(zip(self.keys, value, strict=True))

    def encode(self, value: Any, where: str) -> Any:
        """A user-written value (from points_to_evaluate or the base) → the Optuna value."""
        if self.dist == "choice":
            labels = self.labels()
            label = _label(value) if self.labelled else value
            if label not in labels:
                raise UserError(f"{where}: {self.name}={value!r} is not one of its values {list(self.values)}")
            return label
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            raise UserError(f"{where}: {self.name}={value!r} is outside [{self.low:g}, {self.high:g}]")
        if self.dist in ("quniform", "int") and self.q and not _multiple(value - self.low, self.q):
            raise UserError(f"{where}: {self.name}={value!r} is not on its grid low + k * q (q = {self.q:g})")
        return int(value) if self.dist in INT_DISTS else float(value)

    def to_dict(self) -> dict[str, Any]:
        spec = {"dist": self.dist, "low": self.low, "high": self.high, "q": self.q,
                "values": list(self.values) or None, "when": str(self.when) if self.when else None}
        return {k: v for k, v in spec.items() if v is not None}

    def extremes(self) -> list[Any]:
        """Optuna values at the edges of the range (all values for a choice)."""
        if self.dist == "choice":
            return self.labels()
        if self.dist == "int":
            step = int(self.q or 1)
            return [int(self.low), int(self.low) + (int(self.high) - int(self.low)) // step * step]
        return [self.low, self.high]


def _label(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()


# ---------------------------------------------------------------- sections

@dataclass
class SchedulerSpec:
    max_t: Optional[int] = None  # epochs a trial may run (default: the base's max_epochs)
    grace_period: int = 1  # epochs every trial runs before ASHA may stop it
    reduction_factor: float = 2  # ASHA keeps 1/reduction_factor of trials at each rung


@dataclass
class SearchSpec:
    sampler: Literal["tpe", "random"] = "tpe"  # Optuna sampler
    seed: int = 0  # sampler seed
    n_startup_trials: int = 4  # random trials before TPE models the results
    points_to_evaluate: list[Any] = field(default_factory=list)  # `base` or {param: value}


@dataclass
class ResourcesSpec:
    cpus_per_trial: float = 1.0  # CPU cores reserved per trial
    gpus_per_trial: float = 0.0  # GPUs per trial; 0.25 runs four trials per GPU


@dataclass
class SearchSpace:
    """A parsed, statically validated search space (see the module docstring)."""

    params: tuple[Param, ...]
    path: Optional[Path] = None
    base_config: Optional[Path] = None
    base: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    metric: str = "val/mse_v"
    mode: Literal["min", "max"] = "min"
    num_samples: int = 8
    max_concurrent: int = 2
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    # Base-config values of the keys conditions read when they are not params (see bind).
    condition_values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this space (base inline when it was given inline)."""
        out: dict[str, Any] = {"description": self.description}
        if self.base_config:
            out["base_config"] = str(self.base_config)
        else:
            out["base"] = self.base
        out.update(overrides=self.overrides, metric=self.metric, mode=self.mode, num_samples=self.num_samples,
                   max_concurrent=self.max_concurrent)
        for name in ("scheduler", "search", "resources"):
            out[name] = dataclasses.asdict(getattr(self, name))
        out["params"] = {p.name: p.to_dict() for p in self.params}
        return out

    def base_raw(self) -> dict[str, Any]:
        """The base config as a nested dict: base_config file (or inline base) + overrides."""
        raw = load_yaml(self.base_config) if self.base_config else self.base
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise UserError(f"base config '{self.base_config}' must hold a mapping of config sections")
        return apply_overrides(raw, self.overrides)

    def define_by_run(self, trial: Any) -> None:
        """Optuna define-by-run space: suggests each param whose condition holds."""
        current: dict[str, Any] = {}
        for param in self.params:
            if param.when is not None and not param.when.holds(self._value(param.when.key, current)):
                continue
            current.update(param.decode(param.suggest(trial)))

    def _value(self, key: str, current: dict[str, Any]) -> Any:
        return current[key] if key in current else self.condition_values[key]

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        """Optuna params of one trial → the dotted config overrides they stand for."""
        out: dict[str, Any] = {}
        for param in self.params:
            if param.name in params:
                out.update(param.decode(params[param.name]))
        return out

    def trial_config(self, base_raw: dict[str, Any], params: dict[str, Any]) -> TrainConfig:
        return from_dict(apply_overrides(base_raw, self.resolve(params)))

    def bind(self, base_cfg: TrainConfig) -> None:
        """Record the base values that conditions read for keys that are not params."""
        self.condition_values = {p.when.key: get_key(base_cfg, p.when.key) for p in self.params if p.when}

    def points_to_evaluate(self, base_cfg: TrainConfig) -> list[dict[str, Any]]:
        """`search.points_to_evaluate` in Optuna form, each value checked against its param."""
        by_name = {p.name: p for p in self.params}
        points = []
        for i, entry in enumerate(self.search.points_to_evaluate):
            where = f"search.points_to_evaluate[{i}]"
            if entry == "base":
                points.append(self._base_point(base_cfg, where))
                continue
            if not isinstance(entry, dict):
                raise UserError(f"{where} must be 'base' or a mapping of param → value, got {entry!r}")
            for name in entry:
                if name not in by_name:
                    raise UserError(f"{where}: '{name}' is not a param of this space{_closest(name, by_name)}")
            points.append({n: by_name[n].encode(v, where) for n, v in entry.items()})
        return points

    def _base_point(self, base_cfg: TrainConfig, where: str) -> dict[str, Any]:
        current: dict[str, Any] = {}
        point = {}
        for p in self.params:
            if p.when is not None and not p.when.holds(self._value(p.when.key, current)):
                continue
            values = [get_key(base_cfg, k) for k in p.keys]
            point[p.name] = p.encode(values[0] if len(values) == 1 else values, f"{where} (base)")
            current.update(p.decode(point[p.name]))
        return point

    def check(self, base_raw: dict[str, Any], *, n_random: int = 64, seed: int = 0,
              extra: Optional[Callable[[TrainConfig], None]] = None) -> int:
        """Validate points the space can produce as TrainConfigs before any trial starts.

        Checks the edges of every range (all combinations when there are few, else one
        param at a time), every choice value and `n_random` random draws, each also with
        `extra` (e.g. a check against the loaded data); returns the number of points
        checked. Raises UserError naming the first invalid point.
        """
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        base_cfg = from_dict(base_raw)
        self.bind(base_cfg)
        candidates = [optuna.trial.FixedTrial(p) for p in self._edge_points()]
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        candidates += [study.ask() for _ in range(n_random)]
        for p in self.points_to_evaluate(base_cfg):
            candidates.append(optuna.trial.FixedTrial({**self._edge_points()[0], **p}))
        for trial in candidates:
            params = _params_of(self, trial)
            try:
                cfg = self.trial_config(base_raw, params)
                if extra is not None:
                    extra(cfg)
            except UserError as err:
                shown = ", ".join(f"{k}={v!r}" for k, v in self.resolve(params).items())
                raise UserError(f"search space can produce an invalid config ({shown}): {err}") from None
        return len(candidates)

    def _edge_points(self) -> list[dict[str, Any]]:
        edges = [p.extremes() for p in self.params]
        if math.prod(len(e) for e in edges) <= 512:
            return [dict(zip((p.name for p in self.params), combo, strict=True)) for combo in itertools.product(*edges)]
        first = {p.name: e[0] for p, e in zip(self.params, edges, strict=True)}
        return [first] + [{**first, p.name: v} for p, e in zip(self.params, edges, strict=True) for v in e[1:]]


def _params_of(space: SearchSpace, trial: Any) -> dict[str, Any]:
    """Run the define-by-run function on `trial` and collect what it suggested."""
    seen: dict[str, Any] = {}

    class _Recorder:
        def __getattr__(self, name: str) -> Any:
            method = getattr(trial, name)
            if not name.startswith("suggest_"):
                return method

            def suggest(param_name: str, *args: Any, **kwargs: Any) -> Any:
                seen[param_name] = method(param_name, *args, **kwargs)
                return seen[param_name]

            return suggest

    space.define_by_run(_Recorder())
    return seen


# ---------------------------------------------------------------- parsing

def load_space(path: str | Path) -> SearchSpace:
    """Read and statically validate a search-space YAML file."""
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise UserError(f"search space '{path}' must be a mapping with at least 'params'")
    return parse_space(raw, path)


def parse_space(raw: dict[str, Any], path: Optional[Path] = None) -> SearchSpace:
    """Build a SearchSpace from its YAML mapping (`path` anchors a relative base_config)."""
    names = [f.name for f in dataclasses.fields(SearchSpace) if f.name not in ("path", "condition_values")]
    _reject_unknown(raw, names, "search space field")
    if "base_config" in raw and "base" in raw:
        raise UserError("search space: give either base_config (a file) or base (inline), not both")
    kwargs: dict[str, Any] = {"path": path, "params": _parse_params(raw.get("params"))}
    for name, cls in (("scheduler", SchedulerSpec), ("search", SearchSpec), ("resources", ResourcesSpec)):
        kwargs[name] = _section(cls, raw.get(name) or {}, name)
    for name in ("description", "metric", "mode", "num_samples", "max_concurrent"):
        if name in raw:
            kwargs[name] = _typed(raw[name], typing.get_type_hints(SearchSpace)[name], name)
    if "base_config" in raw:
        kwargs["base_config"] = _find_base(raw["base_config"], path)
    for name in ("base", "overrides"):
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            raise UserError(f"search space field '{name}' must be a mapping, got {value!r}")
        kwargs[name] = value
    space = SearchSpace(**kwargs)
    check_settings(space)
    return space


def _find_base(value: Any, path: Optional[Path]) -> Path:
    if not isinstance(value, str) or not value:
        raise UserError(f"base_config must be a path to a train config YAML, got {value!r}")
    candidates = ([path.parent / value] if path else []) + [Path(value)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = " or ".join(f"'{c}'" for c in candidates)
    raise UserError(f"base_config '{value}' not found (looked for {looked}); fix the path")


def _parse_params(raw: Any) -> tuple[Param, ...]:
    if not isinstance(raw, dict) or not raw:
        raise UserError("search space has no params; add e.g. "
                        "params: {optim.lr: {dist: loguniform, low: 1e-4, high: 3e-3}}")
    params = tuple(_parse_param(str(name), spec) for name, spec in raw.items())
    seen: set[str] = set()
    for i, p in enumerate(params):
        if p.when is not None:
            _check_key(p.when.key, f"params.{p.name}.when", searched=False)
            later = {k for q in params[i:] for k in q.keys}
            if p.when.key in later:
                raise UserError(f"params.{p.name}.when names '{p.when.key}', which is not a param "
                                "declared before it; move it above")
        if seen & set(p.keys):
            raise UserError(f"params: key {sorted(seen & set(p.keys))[0]!r} is searched twice")
        seen |= set(p.keys)
    return params


def _parse_param(name: str, spec: Any) -> Param:
    where = f"params.{name}"
    keys = tuple(k.strip() for k in name.split(","))
    for key in keys:
        _check_key(key, where)
    if not isinstance(spec, dict):
        raise UserError(f"{where} must be a mapping like {{dist: uniform, low: 0, high: 1}}, got {spec!r}")
    _reject_unknown(spec, ["dist", "low", "high", "q", "values", "when"], f"field of {where}")
    dist = spec.get("dist")
    if dist not in typing.get_args(Dist):
        raise UserError(f"{where}: unknown dist {dist!r}; use one of {', '.join(typing.get_args(Dist))}")
    when = Condition.parse(spec["when"], where) if "when" in spec else None
    if dist == "choice":
        return _choice(name, keys, spec, when, where)
    if len(keys) > 1:
        raise UserError(f"{where}: a joint param (several keys) must be a choice of value lists")
    low, high, q = (_number(spec.get(k), f"{where}.{k}", k != "q") for k in ("low", "high", "q"))
    _check_range(dist, low, high, q, where)
    _check_kind(keys[0], dist, where)
    return Param(name, keys, dist, low, high, q, when=when)


def _choice(name: str, keys: tuple[str, ...], spec: dict, when: Any, where: str) -> Param:
    values = spec.get("values")
    if not isinstance(values, list) or not values:
        raise UserError(f"{where}: a choice needs a non-empty list of values")
    if any(k in spec for k in ("low", "high", "q")):
        raise UserError(f"{where}: a choice takes values, not low/high/q")
    if len(keys) > 1 and any(not isinstance(v, list) or len(v) != len(keys) for v in values):
        raise UserError(f"{where}: each value of a joint choice must list {len(keys)} values, one per key")
    if len({_label(v) for v in values}) != len(values):
        raise UserError(f"{where}: choice values must be distinct")
    return Param(name, keys, "choice", values=tuple(values), when=when)


def _number(value: Any, where: str, required: bool) -> Optional[float]:
    if value is None and not required:
        return None
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where} must be a finite number, got {value!r}")
    return value


def _check_range(dist: str, low: float, high: float, q: Optional[float], where: str) -> None:
    if low >= high:
        raise UserError(f"{where}: low ({low:g}) must be < high ({high:g})")
    if dist in ("loguniform", "qloguniform") and low <= 0:
        raise UserError(f"{where}: a log range needs low > 0, got {low:g}; use uniform to include 0")
    if dist in INT_DISTS and not all(float(v).is_integer() for v in (low, high)):
        raise UserError(f"{where}: {dist} bounds must be integers, got low={low!r}, high={high!r}")
    if dist == "logint" and low < 1:
        raise UserError(f"{where}: logint needs low >= 1, got {low:g}")
    if dist in ("quniform", "qloguniform") and (q is None or q <= 0):
        raise UserError(f"{where}: {dist} needs a step q > 0")
    if dist == "int" and q is not None and (q < 1 or not float(q).is_integer()):
        raise UserError(f"{where}: the step q of an int must be a whole number >= 1, got {q!r}")
    if dist in ("uniform", "loguniform", "logint") and q is not None:
        raise UserError(f"{where}: {dist} takes no q; use the q-variant (quniform, qloguniform) or int")
    if dist == "quniform" and not _multiple(high - low, q):
        raise UserError(f"{where}: high - low ({high - low:g}) must be a multiple of q ({q:g})")
    if dist == "qloguniform" and low < q:
        raise UserError(f"{where}: qloguniform needs low >= q so values never round to 0")


def _multiple(span: float, q: float) -> bool:
    return abs(span / q - round(span / q)) < 1e-9


def _check_key(key: str, where: str, *, searched: bool = True) -> None:
    if searched and key in RESERVED_KEYS:
        raise UserError(f"{where}: '{key}' cannot be searched ({RESERVED_KEYS[key]})")
    if key not in all_keys():
        close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UserError(f"{where}: '{key}' is not a config key{hint}")


def _check_kind(key: str, dist: str, where: str) -> None:
    default = get_key(TrainConfig(), key)
    if isinstance(default, bool) or isinstance(default, (str, list)):
        raise UserError(f"{where}: '{key}' is not numeric; search it with dist: choice")
    if isinstance(default, int) and dist in FLOAT_DISTS:
        raise UserError(f"{where}: '{key}' is an integer; use dist int, logint or choice")


def check_settings(space: SearchSpace) -> None:
    """Range checks of the search settings (also run after flags replace them)."""
    s = space.scheduler
    checks = [
        (space.metric in METRICS,
         f"metric {space.metric!r} is not reported every epoch; use one of {', '.join(METRICS)}"),
        (METRIC_MODES.get(space.metric, space.mode) == space.mode,
         f"metric {space.metric!r} improves when it goes {'down' if space.mode == 'max' else 'up'}; "
         f"set mode: {METRIC_MODES.get(space.metric)}"),
        (space.num_samples >= 1, f"num_samples must be >= 1, got {space.num_samples}"),
        (space.max_concurrent >= 1, f"max_concurrent must be >= 1, got {space.max_concurrent}"),
        (s.max_t is None or s.max_t >= 1, f"scheduler.max_t must be >= 1, got {s.max_t}"),
        (s.grace_period >= 1, f"scheduler.grace_period must be >= 1, got {s.grace_period}"),
        (s.max_t is None or s.grace_period <= s.max_t,
         f"scheduler.grace_period ({s.grace_period}) must be <= max_t ({s.max_t})"),
        (s.reduction_factor > 1, f"scheduler.reduction_factor must be > 1, got {s.reduction_factor}"),
        (space.search.n_startup_trials >= 0, "search.n_startup_trials must be >= 0"),
        (0 <= space.search.seed < 2**32, f"search.seed must be in [0, 2**32), got {space.search.seed}"),
        (space.resources.cpus_per_trial > 0, "resources.cpus_per_trial must be > 0"),
        (space.resources.gpus_per_trial >= 0, "resources.gpus_per_trial must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"search space: {message}")
    if not isinstance(space.search.points_to_evaluate, list):
        raise UserError("search.points_to_evaluate must be a list of 'base' or {param: value} mappings")


# ---------------------------------------------------------------- small typed sections

def _reject_unknown(raw: dict, allowed: list[str], what: str) -> None:
    for key in raw:
        if key not in allowed:
            raise UserError(f"unknown {what} '{key}'{_closest(str(key), allowed)}; allowed: {', '.join(allowed)}")


def _closest(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _section(cls: type, raw: Any, name: str) -> Any:
    if not isinstance(raw, dict):
        raise UserError(f"search space field '{name}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    _reject_unknown(raw, list(hints), f"field of {name}")
    return cls(**{k: _typed(v, hints[k], f"{name}.{k}") for k, v in raw.items()})


def _typed(value: Any, tp: Any, where: str) -> Any:
    """Check one setting against its annotation (ints accepted for floats)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        return None if value is None else _typed(value, args[0], where)
    if origin is Literal:
        if value not in args:
            raise UserError(f"search space: {where} is {value!r}; allowed: {', '.join(map(str, args))}")
        return value
    if origin in (list, dict):
        if not isinstance(value, origin):
            raise UserError(f"search space: {where} must be a {origin.__name__}, got {value!r}")
        return value
    if tp is float and not isinstance(value, bool) and isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise UserError(f"search space: {where} must be of type {tp.__name__}, got {value!r}")
