"""A search space: a validated, typed space and its Optuna define-by-run function.

Read from YAML by `abr_tune.hpo.space_file`.

Schema (every field optional except `params`; unknown fields are errors):

    base_config: ../configs/cpu.yaml  # train config the params modify: relative to this
                                      # file, else to the CWD (default: built-in defaults)
    base: {model: {d_model: 64}}      # or an inline nested config instead of base_config
    overrides: {trainer.sample_every_epochs: 2}   # dotted keys set on the base, not searched
    description: "what this space is for"
    metric: val/mse_v                 # reported metric to optimise (default val/mse_v)
    mode: min                         # min | max (default min)
    metrics: [val/mse_v, sample/detection_acc]   # or several objectives (instead of metric): a
                                      # Pareto front; the first is the primary (ASHA), modes implied
    constraints: ["sample/detection_acc >= 0.8"]  # feasible trials only on the front
    num_samples: 8                    # trials
    max_concurrent: 2                 # trials running at once
    scheduler: {max_t: 6, grace_period: 1, reduction_factor: 2}   # ASHA, in epochs
    search: {sampler: tpe, seed: 0, n_startup_trials: 4, points_to_evaluate: [base],
             multivariate: false, group: false, constant_liar: false}   # TPE options
    resources: {cpus_per_trial: 1, gpus_per_trial: 0}   # fractions allowed
    confirm: {top_k: 2, seeds: 3}     # re-run the top 2 and the base over 3 seeds (default top_k 0: off),
                                      # raced (race: true, alpha: 0.05; spread: the paired seed spread
                                      # ÷ the base value if measured, to decide from seed 1)
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
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from ..config import TrainConfig, apply_overrides, from_dict, get_key, load_yaml
from ..errors import UserError
from ..metrics_registry import mode_of, sampled, wave_metric, wave_of
from .limits import check_sizes
from .objectives import Constraint, parse_constraint
from .params import Param, closest_hint

# The default objective of a space on a lab's recordings file (data.source: file, a non-human data.species)
# that names none (the clinic's files keep val/mse_v): on real mouse
# recordings val/mse_v kept falling while the samples stayed distinguishable from the recordings, which the
# classifier two-sample test sees (benchmarks/README.md, "Real recordings").
FILE_DATA_METRIC = "sample/c2st_acc"


@dataclass
class SchedulerSpec:
    max_t: Optional[int] = None  # epochs a trial may run (default: the base's max_epochs)
    grace_period: int = 1  # epochs every trial runs before ASHA may stop it
    reduction_factor: float = 2  # ASHA keeps 1/reduction_factor of trials at each rung


@dataclass
class SearchSpec:
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"  # Optuna sampler (nsga2: NSGA-II, for several metrics)
    population_size: int = 8  # NSGA-II's generation size
    seed: int = 0  # sampler seed
    n_startup_trials: int = 4  # random trials before TPE models the results
    points_to_evaluate: list[Any] = field(default_factory=list)  # `base` or {param: value}
    # TPE options (Optuna's TPESampler): model the params jointly, split a conditional space into
    # groups that always appear together, and treat running trials as the worst value so far.
    multivariate: bool = False
    group: bool = False
    constant_liar: bool = False


@dataclass
class ResourcesSpec:
    cpus_per_trial: float = 1.0  # CPU cores reserved per trial
    gpus_per_trial: float = 0.0  # GPUs per trial; 0.25 runs four trials per GPU


@dataclass
class ConfirmSpec:
    top_k: int = 0  # after the search, re-run the top K configurations and the base over seeds (0 = off)
    seeds: int = 3  # training seeds per configuration (data, split and validation draw stay fixed); the cap when racing
    race: bool = True  # a few runs at a time, each comparison stopped once decided (hpo/race.py); false: all seeds
    alpha: float = 0.05  # the racing decisions' error rate (anytime-valid, under optional stopping)
    spread: Optional[float] = None  # paired seed-to-seed spread ÷ the base value, measured once: decides from seed 1


@dataclass
class SearchSpace:
    """A parsed, statically validated search space (see the module docstring)."""

    params: tuple[Param, ...]
    path: Optional[Path] = None
    base_config: Optional[Path] = None
    base: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    metric: str = "val/mse_v"  # the primary metric: ASHA's, Tune's; the first of `metrics`
    mode: Literal["min", "max"] = "min"
    metrics: list[str] = field(default_factory=list)  # several objectives (a Pareto front); [] = metric only
    constraints: list[str] = field(default_factory=list)  # "<metric> >= <number>" or "<= <number>"
    num_samples: int = 8
    max_concurrent: int = 2
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    confirm: ConfirmSpec = field(default_factory=ConfirmSpec)
    # Base-config values of the keys conditions read when they are not params (see bind).
    condition_values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this space (base inline when it was given inline)."""
        out: dict[str, Any] = {"description": self.description}
        if self.base_config:
            out["base_config"] = str(self.base_config)
        else:
            out["base"] = self.base
        out.update(overrides=self.overrides, metric=self.metric, mode=self.mode, metrics=self.metrics,
                   constraints=self.constraints, num_samples=self.num_samples, max_concurrent=self.max_concurrent)
        for name in ("scheduler", "search", "resources", "confirm"):
            out[name] = dataclasses.asdict(getattr(self, name))
        out["params"] = {p.name: p.to_dict() for p in self.params}
        return out

    @property
    def objectives(self) -> list[str]:
        """The metrics the search optimises, the primary first."""
        return list(self.metrics) or [self.metric]

    @property
    def modes(self) -> list[str]:
        return [mode_of(m) for m in self.metrics] if self.metrics else [self.mode]

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def parsed_constraints(self) -> list[Constraint]:
        return [parse_constraint(c) for c in self.constraints]

    def sample_epochs(self) -> list[int]:
        """The epochs a trial must sample on when a sample metric drives ASHA: its rungs (the last
        epoch always samples); none otherwise."""
        if not sampled(self.metric):
            return []
        s, epochs = self.scheduler, set()
        milestone = float(s.grace_period)
        while s.max_t is not None and milestone < s.max_t:
            epochs.add(math.ceil(milestone))
            milestone *= s.reduction_factor
        return sorted(epochs)

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
                points.append(self.base_point(base_cfg, where))
                continue
            if not isinstance(entry, dict):
                raise UserError(f"{where} must be 'base' or a mapping of param → value, got {entry!r}")
            for name in entry:
                if name not in by_name:
                    raise UserError(f"{where}: '{name}' is not a param of this space{closest_hint(name, by_name)}")
            points.append({n: by_name[n].encode(v, where) for n, v in entry.items()})
        return points

    def base_point(self, base_cfg: TrainConfig, where: str = "the base config") -> dict[str, Any]:
        """The base config's own value of every param whose condition holds (Optuna form)."""
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
        self._check_waves(base_cfg)
        candidates = [optuna.trial.FixedTrial(p) for p in self._edge_points()]
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        candidates += [study.ask() for _ in range(n_random)]
        for p in self.points_to_evaluate(base_cfg):
            candidates.append(optuna.trial.FixedTrial({**self._edge_points()[0], **p}))
        for trial in candidates:
            params = _params_of(self, trial)
            try:
                cfg = self.trial_config(base_raw, params)
                check_sizes(cfg, {k for p in self.params for k in p.keys})
                if extra is not None:
                    extra(cfg)
            except UserError as err:
                shown = ", ".join(f"{k}={v!r}" for k, v in self.resolve(params).items())
                raise UserError(f"search space can produce an invalid config ({shown}): {err}") from None
        return len(candidates)

    def _check_waves(self, base_cfg: TrainConfig) -> None:
        """A wave metric must score the wave the runs' profile scores: no other wave's is ever reported."""
        primary = base_cfg.profile.primary
        for name in self.objectives + [c.metric for c in self.parsed_constraints()]:
            if wave_of(name) not in (None, primary.upper()):
                measure = name.split("_", 2)[2]
                raise UserError(f"search space: metric {name!r} scores wave {wave_of(name)}, but the base config's "
                                f"{base_cfg.data.species} runs score wave {primary}; use "
                                f"{wave_metric(primary, measure)!r} (or set physiology.primary_wave)")

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
