"""Typed, validated training config: YAML load, `a.b: v` overrides, round-trip to YAML.

Every key a file names is read and honoured, or rejected with the closest valid key
(DESIGN §3). Sections are frozen-free dataclasses so callers can read `cfg.optim.lr`.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .errors import UserError

SEQUENCE_LENGTH = 200  # T is fixed by the product: 10 ms at 20 kHz.
STATIC_NAMES = ("age", "intensity", "rate", "fmp")


@dataclass
class SyntheticConfig:
    n_subjects: int = 240  # simulated subjects; each gets an intensity series
    recordings_per_subject: int = 10  # recordings per subject (intensities and rates)
    seed: int = 1234  # the dataset's own seed: trials with different `seed` share data


@dataclass
class DataConfig:
    source: Literal["synthetic", "file"] = "synthetic"  # embedded simulator or a user file
    path: Optional[str] = None  # .npz / .csv (or .pkl with allow_pickle) when source=file
    allow_pickle: bool = False  # opt in to reading the original pipeline's joblib pickle
    sample_rate_hz: float = 20000.0  # 200 samples at 20 kHz = 10 ms
    sequence_length: int = SEQUENCE_LENGTH  # must be 200; other lengths are rejected
    static_order: list[str] = field(default_factory=lambda: list(STATIC_NAMES))  # static column order in files
    split: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])  # train/val/test by patient
    split_seed: int = 42  # seed of the patient-level split
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class LoaderConfig:
    batch_size: int = 32  # recordings per optimiser step
    shuffle: bool = True  # shuffle the train split each epoch
    drop_last: bool = True  # drop the last incomplete train batch


@dataclass
class ModelConfig:
    input_channels: int = 1  # waveform channels (1)
    static_dim: int = 4  # Age, Intensity, Rate, FMP
    sequence_length: int = SEQUENCE_LENGTH  # must be 200
    d_model: int = 256  # token width
    n_layers: int = 6  # transformer blocks
    n_heads: int = 8  # attention heads; must divide d_model
    ff_mult: int = 4  # feed-forward width = ff_mult * d_model
    dropout: float = 0.1  # dropout on each sub-layer's output (attention, conv, feed-forward)
    stem_kernels: list[int] = field(default_factory=lambda: [3, 7, 15])  # multi-scale stem
    use_conv_module: bool = True  # depthwise-conv module in each block
    conv_kernel_size: int = 7  # kernel of that depthwise conv


@dataclass
class DiffusionConfig:
    num_train_steps: int = 1000  # diffusion timesteps used in training
    schedule: Literal["cosine"] = "cosine"  # Nichol & Dhariwal 2021
    sample_steps: int = 60  # DDIM steps when sampling
    ddim_eta: float = 0.0  # 0 = deterministic DDIM, 1 = DDPM-like
    cfg_scale: float = 1.0  # classifier-free guidance scale (1 = conditional only)


@dataclass
class OptimConfig:
    lr: float = 1e-4  # AdamW peak learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])  # AdamW betas
    weight_decay: float = 1e-5  # AdamW weight decay
    grad_clip: float = 1.0  # max gradient norm (0 disables clipping)
    amp: bool = True  # mixed precision on CUDA; on CPU only with amp_on_cpu
    amp_dtype: Literal["bf16", "fp16"] = "bf16"  # fp16 uses a GradScaler
    amp_on_cpu: bool = False  # bf16 autocast on CPU: faster for large models on AMX CPUs only
    ema_decay: float = 0.999  # EMA decay, warmed up as min(decay, (1+n)/(10+n))


@dataclass
class StftConfig:
    n_fft: int = 64  # FFT size of the base resolution
    hop_length: int = 16  # hop of the base resolution
    win_length: int = 64  # window of the base resolution
    multi_resolution: bool = True  # also use half and double the base resolution


@dataclass
class LossConfig:
    stft_weight: float = 0.15  # weight of the multi-resolution STFT loss (applied once)
    stft: StftConfig = field(default_factory=StftConfig)


@dataclass
class TrainerConfig:
    max_epochs: int = 100  # epochs to train
    validate_every_epochs: int = 1  # run validation every N epochs
    sample_every_epochs: int = 2  # DDIM samples and figures every N epochs
    save_every_epochs: int = 5  # periodic checkpoint every N epochs
    ckpt_dir: Optional[str] = None  # default: <log_dir>/<exp_name>/checkpoints
    keep_last_k: int = 5  # periodic checkpoints kept
    early_stop_patience: int = 20  # validations without improvement before stopping (0 = off)
    log_every_steps: int = 10  # step-level TensorBoard scalars every N steps
    val_seed: int = 2024  # seed of the fixed (t, noise) draw used by val/mse_v
    progress: bool = True  # show a progress bar per epoch


@dataclass
class VizConfig:
    num_samples: int = 8  # waveforms generated per sampling round
    plot_spectrogram: bool = True  # also log spectrogram figures


@dataclass
class AdvancedConfig:
    cfg_dropout_prob: float = 0.1  # per-sample probability of the null condition
    lr_scheduler: Literal["cosine", "constant"] = "cosine"  # lr after warm-up: cosine decay or constant
    lr_warmup_steps: int = 1000  # linear warm-up steps
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    torch_threads: int = 0  # torch CPU threads (0 = leave torch's default)


@dataclass
class TrainConfig:
    seed: int = 42  # seed of weights, batches and noise
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda if available
    log_dir: str = "runs/abr_transformer"  # TensorBoard and run outputs go under here
    exp_name: str = "abr_transformer"  # run name; checkpoints are <exp_name>_best.pt etc.
    data: DataConfig = field(default_factory=DataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    viz: VizConfig = field(default_factory=VizConfig)
    advanced: AdvancedConfig = field(default_factory=AdvancedConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.log_dir) / self.exp_name

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.trainer.ckpt_dir) if self.trainer.ckpt_dir else self.run_dir / "checkpoints"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---------------------------------------------------------------- building from dicts

def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted for floats."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}' must be a mapping of its sub-keys, got {value!r}")
        return _build(tp, value, key + ".")
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise UserError(f"config key '{key}' is {value!r}; allowed values: {allowed}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise UserError(f"config key '{key}' must be of type {tp.__name__}, got {value!r}")


def _build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = _hints(cls)
    for key in raw:
        if key not in hints:
            raise UserError(_unknown_key_message(prefix + str(key)))
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in raw.items()}
    return cls(**kwargs)


def all_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, e.g. 'optim.lr'."""
    keys = []
    for name, tp in _hints(cls).items():
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


def _unknown_key_message(key: str) -> str:
    if key in _RETIRED_KEYS:
        return f"config key '{key}' is not used by abr-tune ({_RETIRED_KEYS[key]}); remove it"
    section, _, leaf = key.rpartition(".")
    keys = all_keys()
    alias = [k for k in keys if leaf in _ALIASES and k.rsplit(".", 1)[-1] == _ALIASES[leaf]]
    close = [k for k in alias if k.startswith(section)][:1] or difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    if not close:
        close = [k for k in keys if k.rsplit(".", 1)[-1] == leaf][:1]
    if not close:
        close = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.3)
    hint = f"; did you mean '{close[0]}'?" if close else ""
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
            raise UserError(_unknown_key_message(dotted))
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


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def validate(cfg: TrainConfig) -> None:
    """Cross-field and range checks; raises UserError naming the key and the fix."""
    d, m, t = cfg.data, cfg.model, cfg.trainer
    _check(d.sequence_length == SEQUENCE_LENGTH and m.sequence_length == SEQUENCE_LENGTH,
           f"sequence_length must be {SEQUENCE_LENGTH} (10 ms at 20 kHz); signals are never interpolated")
    _check(m.static_dim == 4, "model.static_dim must be 4 (Age, Intensity, Rate, FMP)")
    _check(m.input_channels == 1, "model.input_channels must be 1 (one ABR channel)")
    _check(sorted(d.static_order) == sorted(STATIC_NAMES),
           f"data.static_order must list each of {list(STATIC_NAMES)} once, got {d.static_order}")
    _check(len(d.split) == 3 and all(r >= 0 for r in d.split) and abs(sum(d.split) - 1) < 1e-6
           and d.split[0] > 0 and d.split[1] > 0,
           f"data.split must be three ratios train/val/test summing to 1 with train and val > 0, got {d.split}")
    _check(d.source != "file" or bool(d.path), "data.source is 'file' but data.path is empty; set data.path")
    _check(d.sample_rate_hz > 0, "data.sample_rate_hz must be > 0")
    _check(d.synthetic.n_subjects >= 3 and d.synthetic.recordings_per_subject >= 1,
           "data.synthetic needs n_subjects >= 3 and recordings_per_subject >= 1")
    _check(cfg.loader.batch_size >= 1, f"loader.batch_size must be >= 1, got {cfg.loader.batch_size}")
    _check(m.d_model >= 1 and m.n_layers >= 1 and m.n_heads >= 1 and m.ff_mult >= 1,
           "model.d_model, n_layers, n_heads and ff_mult must be >= 1")
    _check(m.d_model % m.n_heads == 0,
           f"model.n_heads ({m.n_heads}) must divide model.d_model ({m.d_model})")
    _check(0 <= m.dropout < 1, f"model.dropout must be in [0, 1), got {m.dropout}")
    _check(len(m.stem_kernels) >= 1 and all(k >= 1 and k % 2 == 1 for k in m.stem_kernels),
           f"model.stem_kernels must be odd sizes >= 1, got {m.stem_kernels}")
    _check(m.conv_kernel_size >= 1 and m.conv_kernel_size % 2 == 1, "model.conv_kernel_size must be odd")
    _validate_diffusion_optim(cfg)
    _check(t.max_epochs >= 1, f"trainer.max_epochs must be >= 1, got {t.max_epochs}")
    for key in ("validate_every_epochs", "sample_every_epochs", "save_every_epochs", "log_every_steps"):
        _check(getattr(t, key) >= 1, f"trainer.{key} must be >= 1, got {getattr(t, key)}")
    _check(t.keep_last_k >= 0 and t.early_stop_patience >= 0,
           "trainer.keep_last_k and trainer.early_stop_patience must be >= 0")
    _check(cfg.viz.num_samples >= 1, "viz.num_samples must be >= 1")
    a = cfg.advanced
    _check(0 <= a.cfg_dropout_prob < 1, f"advanced.cfg_dropout_prob must be in [0, 1), got {a.cfg_dropout_prob}")
    _check(a.lr_warmup_steps >= 0 and 0 <= a.min_lr_ratio <= 1 and a.torch_threads >= 0,
           "advanced.lr_warmup_steps >= 0, 0 <= min_lr_ratio <= 1 and torch_threads >= 0 are required")


def _validate_diffusion_optim(cfg: TrainConfig) -> None:
    df, o, s = cfg.diffusion, cfg.optim, cfg.loss.stft
    _check(df.num_train_steps >= 2, "diffusion.num_train_steps must be >= 2")
    _check(1 <= df.sample_steps <= df.num_train_steps,
           f"diffusion.sample_steps must be in [1, num_train_steps={df.num_train_steps}], got {df.sample_steps}")
    _check(df.ddim_eta >= 0, "diffusion.ddim_eta must be >= 0")
    _check(df.cfg_scale >= 0, "diffusion.cfg_scale must be >= 0")
    _check(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
    _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas must be two values in [0, 1)")
    _check(o.weight_decay >= 0 and o.grad_clip >= 0, "optim.weight_decay and optim.grad_clip must be >= 0")
    _check(0 <= o.ema_decay < 1, f"optim.ema_decay must be in [0, 1), got {o.ema_decay}")
    _check(cfg.loss.stft_weight >= 0, "loss.stft_weight must be >= 0")
    _check(s.n_fft >= 4 and 1 <= s.hop_length and 1 <= s.win_length <= s.n_fft,
           "loss.stft needs n_fft >= 4, hop_length >= 1 and 1 <= win_length <= n_fft")
    _check(s.n_fft * (2 if s.multi_resolution else 1) <= SEQUENCE_LENGTH,
           f"loss.stft.n_fft ({s.n_fft}, doubled with multi_resolution) must not exceed {SEQUENCE_LENGTH}")
