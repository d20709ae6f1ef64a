"""Searched parameters: distributions, conditions (`when:`) and joint choices, parsed and checked
against the train config's schema (the syntax is described in `abr_tune.hpo.space`)."""

from __future__ import annotations

import math
import operator
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional

import yaml

from ..config import TrainConfig, all_keys, get_key
from ..config.typed import closest
from ..errors import UserError

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


def short_name(param: str) -> str:
    """'optim.lr' → 'lr'; 'model.d_model,model.n_heads' → 'd_model,n_heads'."""
    return ",".join(k.rsplit(".", 1)[-1] for k in param.split(","))


def parse_params(raw: Any) -> tuple[Param, ...]:
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
            _check_numeric(p.when, params[:i], f"params.{p.name}.when")
        if seen & set(p.keys):
            raise UserError(f"params: key {sorted(seen & set(p.keys))[0]!r} is searched twice")
        seen |= set(p.keys)
    return params


def _check_numeric(when: Condition, earlier: tuple[Param, ...], where: str) -> None:
    """A condition compares numbers: the key it reads must hold one in every trial."""
    param = next((p for p in earlier if when.key in p.keys), None)
    if param is None:
        values = [get_key(TrainConfig(), when.key)]
    elif param.dist == "choice":
        column = param.keys.index(when.key)
        values = [v[column] if len(param.keys) > 1 else v for v in param.values]
    else:
        return
    bad = [v for v in values if not is_number(v)]
    if bad:
        raise UserError(f"{where}: '{when}' reads '{when.key}', which can be {bad[0]!r}, not a number; "
                        "a condition compares a numeric key with a number")


def is_number(value: Any) -> bool:
    """What a condition can compare: int, float or bool (True is 1), finite."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def _parse_param(name: str, spec: Any) -> Param:
    where = f"params.{name}"
    keys = tuple(k.strip() for k in name.split(","))
    for key in keys:
        _check_key(key, where)
    if not isinstance(spec, dict):
        raise UserError(f"{where} must be a mapping like {{dist: uniform, low: 0, high: 1}}, got {spec!r}")
    reject_unknown(spec, ["dist", "low", "high", "q", "values", "when"], f"field of {where}")
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
    if dist in ("int", "qloguniform") and q is not None and q > high - low:
        raise UserError(f"{where}: the step q ({q:g}) exceeds the range high - low ({high - low:g}), so only "
                        "one value would be searched; lower q or widen the range")
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
        found = closest(key, all_keys())
        hint = f"; did you mean '{found}'?" if found else ""
        raise UserError(f"{where}: '{key}' is not a config key{hint}")


def _check_kind(key: str, dist: str, where: str) -> None:
    default = get_key(TrainConfig(), key)
    if isinstance(default, bool) or isinstance(default, (str, list)):
        raise UserError(f"{where}: '{key}' is not numeric; search it with dist: choice")
    if isinstance(default, int) and dist in FLOAT_DISTS:
        raise UserError(f"{where}: '{key}' is an integer; use dist int, logint or choice")


def reject_unknown(raw: dict, allowed: list[str], what: str) -> None:
    for key in raw:
        if key not in allowed:
            raise UserError(f"unknown {what} '{key}'{closest_hint(str(key), allowed)}; allowed: {', '.join(allowed)}")


def closest_hint(name: str, options: Any) -> str:
    found = closest(name, options)
    return f" (did you mean '{found}'?)" if found else ""
