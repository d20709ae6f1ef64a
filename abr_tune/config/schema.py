"""The train config's schema: one dataclass per section, each field with its default and meaning.

The field comments are the configuration reference (`python -m abr_tune.config_doc`).
Sections are plain dataclasses so callers can read `cfg.optim.lr`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from ..physiology.profiles import Profile, resolve_profile

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
    sample_rate_hz: float = 20000.0  # the recordings' rate; a file's own sample_rate_hz replaces this default
    window: Optional[float] = None  # start (ms) of the 200-sample window cut from longer records (0: from onset)
    resample_hz: Optional[float] = None  # resample to this rate (polyphase, anti-aliased) before the window
    signal_scale: float = 1.0  # multiplies a file's signals into µV, e.g. 1e6 for volts
    artifact_reject: float = 10.0  # drop records with peak-to-peak > this x their condition's median (0 = keep)
    sequence_length: int = SEQUENCE_LENGTH  # must be 200: longer records need data.window or data.resample_hz
    static_order: list[str] = field(default_factory=lambda: list(STATIC_NAMES))  # static column names; a file's own
    columns: dict[str, str] = field(default_factory=dict)  # CSV header per column, e.g. {age: "Patient Age"}
    split: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])  # train/val/test by patient
    split_seed: int = 42  # seed of the patient-level split
    max_subjects: Optional[int] = None  # use only this many patients (seeded choice), e.g. a search's smoke test
    species: Literal["human", "mouse"] = "human"  # whose waves the picker, detection and metrics look for
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    set_by_user = frozenset()  # not a key: the keys the config or an override named (`loading`); defaults give way

    @property
    def effective_rate_hz(self) -> float:
        """The rate of the signals the model sees: data.resample_hz when set, else data.sample_rate_hz."""
        return self.resample_hz or self.sample_rate_hz


@dataclass
class PhysiologyConfig:
    waves: dict[str, list[float]] = field(default_factory=dict)  # {wave: [start, end]} ms after the stimulus
    primary_wave: Optional[str] = None  # wave of detection and sample/wave_<x>_*; default human V, mouse I
    delay_ms: Optional[float] = None  # record start to stimulus at the ear, ms; default human 0, mouse 0.9


@dataclass
class LoaderConfig:
    batch_size: int = 32  # recordings per optimiser step
    shuffle: bool = True  # shuffle the train split each epoch
    drop_last: bool = True  # drop the last incomplete train batch


@dataclass
class ModelConfig:
    input_channels: int = 1  # waveform channels (1)
    static_dim: int = 4  # condition inputs: the data's numeric conditions plus one per category (clinic: 4)
    sequence_length: int = SEQUENCE_LENGTH  # must be 200
    d_model: int = 256  # token width
    n_layers: int = 6  # transformer blocks
    n_heads: int = 8  # attention heads; must divide d_model
    ff_mult: int = 4  # feed-forward width = ff_mult * d_model
    dropout: float = 0.1  # dropout on each sub-layer's output (attention, conv, feed-forward)
    stem_kernels: list[int] = field(default_factory=lambda: [3, 7, 15])  # multi-scale stem
    use_conv_module: bool = True  # depthwise-conv module in each block
    conv_kernel_size: int = 7  # kernel of that depthwise conv

    set_by_user = frozenset()  # not a key: the keys the config or an override named (`loading`)


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
    eps: float = 1e-5  # added to each STFT magnitude inside the log of the log-magnitude term


@dataclass
class LossConfig:
    stft_weight: float = 0.15  # weight of the multi-resolution STFT loss (applied once)
    stft: StftConfig = field(default_factory=StftConfig)


@dataclass
class TrainerConfig:
    max_epochs: int = 100  # epochs to train
    validate_every_epochs: int = 1  # run validation every N epochs
    sample_every_epochs: int = 2  # DDIM samples and figures every N epochs
    sample_epochs: list[int] = field(default_factory=list)  # more epochs to sample on (the last always samples)
    sample_conditions: int = 32  # validation conditions the sample metrics score (fixed by val_seed)
    save_every_epochs: int = 5  # periodic checkpoint every N epochs
    ckpt_dir: Optional[str] = None  # default: <log_dir>/<exp_name>/checkpoints
    keep_last_k: int = 5  # periodic checkpoints kept
    early_stop_patience: int = 20  # validations without improvement before stopping (0 = off)
    early_stop_min_delta: float = 0.0  # val/mse_v must fall by more than this to count as an improvement
    log_every_steps: int = 10  # step-level TensorBoard scalars every N steps
    val_seed: int = 2024  # seed of the fixed (t, noise) draw used by val/mse_v
    progress: bool = True  # show a progress bar per epoch
    resume: Optional[str] = None  # checkpoint to continue from, as --resume (empty = start fresh)


@dataclass
class VizConfig:
    num_samples: int = 8  # generated waveforms shown per sampling round
    num_reference_plots: int = 8  # validation recordings shown in the reference figure
    plot_spectrogram: bool = True  # also log spectrogram figures
    max_spectrogram_plots: int = 8  # panels per spectrogram figure (at most num_samples)
    figsize: Optional[list[float]] = None  # (width, height) inches of every figure; default: sized per panel


@dataclass
class AdvancedConfig:
    cfg_dropout_prob: float = 0.1  # per-sample probability of the null condition
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"  # lr after warm-up: decay shape or constant
    lr_warmup_steps: int = 1000  # linear warm-up steps
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    torch_threads: int = 0  # torch CPU threads (0 = leave torch's default)
    val_sample_cfg_scales: list[float] = field(default_factory=list)  # more CFG scales scored: sample_cfg<s>/*


@dataclass
class LoggingConfig:
    log_parameter_histograms: bool = False  # a TensorBoard histogram of every weight each epoch (params/*)


@dataclass
class ReproducibilityConfig:
    deterministic: bool = False  # deterministic torch kernels (slower); with the seeds, reruns match exactly
    benchmark: bool = False  # cuDNN autotuning on CUDA (faster convolutions, not deterministic)


@dataclass
class TrainConfig:
    seed: int = 42  # seed of weights, batches and noise
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda if available
    log_dir: str = "runs/abr_transformer"  # TensorBoard and run outputs go under here
    exp_name: str = "abr_transformer"  # run name; checkpoints are <exp_name>_best.pt etc.
    data: DataConfig = field(default_factory=DataConfig)
    physiology: PhysiologyConfig = field(default_factory=PhysiologyConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    viz: VizConfig = field(default_factory=VizConfig)
    advanced: AdvancedConfig = field(default_factory=AdvancedConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    reproducibility: ReproducibilityConfig = field(default_factory=ReproducibilityConfig)

    @property
    def profile(self) -> Profile:
        """The species' physiology with the `physiology` section's overrides (`abr_tune.physiology.profiles`)."""
        p = self.physiology
        return resolve_profile(self.data.species, p.waves, p.primary_wave, p.delay_ms)

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
