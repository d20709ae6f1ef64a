"""Cross-field and range checks of a built TrainConfig; each failure names the key and the fix.

Every number is also checked for its physical range here (finiteness is the schema's, `typed`).
"""

from __future__ import annotations

import re

from ..physiology.profiles import window_problems
from ..physiology.ranges import CFG_SCALE, DDIM_ETA, SEED_MAX
from .names import COLUMN_ROLES
from .schema import SEQUENCE_LENGTH, STATIC_NAMES, TrainConfig

# A run name becomes a directory and file-name prefix: no separators, no glob characters (periodic
# checkpoints are found by globbing it), not hidden, not an option.
PLAIN_NAME = re.compile(r"\w[\w.+-]{0,99}")  # matched with fullmatch
MAX_EXTRA_CFG_SCALES = 8  # each one is a DDIM sampling pass per sampling round
MAX_SIMULATED = 2_000_000  # recordings: ~3 GB of float32 signals and noise-free responses
MAX_THREADS = 1024


class Checks(list):
    """The failed checks' messages, in order; `check(ok, message)` adds one when not ok."""

    def __call__(self, ok: bool, message: str) -> None:
        if not ok:
            self.append(message)


def problems_of(cfg: TrainConfig) -> list[str]:
    """Cross-field and range checks; the message of every one that fails, naming the key and the fix."""
    check = Checks()
    _data(cfg, check)
    _model(cfg, check)
    _diffusion_optim(cfg, check)
    _trainer_viz(cfg, check)
    return list(check)


def _data(cfg: TrainConfig, check: Checks) -> None:
    d, m = cfg.data, cfg.model
    check(PLAIN_NAME.fullmatch(cfg.exp_name) is not None,
          f"exp_name must be a plain name (letters, digits, '_', '-', '.', '+', starting with a letter or digit, "
          f"at most 100 characters): it names the run's directory and files, got {cfg.exp_name!r}; e.g. exp_name: "
          f"{_plain(cfg.exp_name)}")
    check(bool(cfg.log_dir.strip()), "log_dir is empty; set it to the directory runs go under, e.g. runs")
    for key, seed in (("seed", cfg.seed), ("data.split_seed", d.split_seed), ("data.synthetic.seed", d.synthetic.seed),
                      ("trainer.val_seed", cfg.trainer.val_seed)):
        check(0 <= seed <= SEED_MAX, f"{key} must be in [0, {SEED_MAX}] (numpy's seed range), got {seed}")
    check(d.sequence_length == SEQUENCE_LENGTH and m.sequence_length == SEQUENCE_LENGTH,
          f"sequence_length must be {SEQUENCE_LENGTH} (10 ms at 20 kHz); signals are never interpolated")
    names = [str(n) for n in d.static_order]
    check(len(set(names)) == len(names) and all(n.strip() for n in names),
          f"data.static_order must name each condition column once (e.g. {list(STATIC_NAMES)}; the original "
          f"pipeline's Age, Intensity, Stimulus Rate, FMP are accepted too), got {d.static_order}")
    for key, value in (("data.resample_hz", d.resample_hz), ("data.window", d.window)):
        hi = 1e6 if key == "data.resample_hz" else 1000.0
        check(value is None or (0 < value <= hi if key == "data.resample_hz" else 0 <= value <= hi),
              f"{key} must be {'in (0, 1e6] Hz' if key == 'data.resample_hz' else 'a start in [0, 1000] ms'} "
              f"or empty, got {value}")
    check(0 < d.signal_scale <= 1e12, f"data.signal_scale must be in (0, 1e12] (e.g. 1e6 for volts), "
                                      f"got {d.signal_scale:g}")
    check(d.artifact_reject == 0 or d.artifact_reject >= 2,
          f"data.artifact_reject must be 0 (off) or a factor >= 2, got {d.artifact_reject:g}")
    unknown_roles = [k for k in d.columns if k not in COLUMN_ROLES]
    check(not unknown_roles, f"data.columns names {unknown_roles}, which are not columns abr-tune reads; its keys are "
                             f"{', '.join(COLUMN_ROLES)}, e.g. {{age: \"Patient Age\"}}")
    headers = list(d.columns.values())
    check(all(isinstance(h, str) and h.strip() for h in headers) and len(set(headers)) == len(headers),
          f"data.columns must map each column to its own non-empty CSV header, got {d.columns}")
    check(len(d.split) == 3 and all(r >= 0 for r in d.split) and abs(sum(d.split) - 1) < 1e-6
          and d.split[0] > 0 and d.split[1] > 0,
          f"data.split must be three ratios train/val/test summing to 1 with train and val > 0, got {d.split}")
    check(d.max_subjects is None or d.max_subjects >= 3,
          f"data.max_subjects must be at least 3 (one patient per split), got {d.max_subjects}")
    check(d.source != "file" or bool(d.path), "data.source is 'file' but data.path is empty; set data.path")
    check(0 < d.sample_rate_hz <= 1e6, f"data.sample_rate_hz must be in (0, 1e6] Hz, got {d.sample_rate_hz:g}")
    check(d.synthetic.n_subjects >= 3 and d.synthetic.recordings_per_subject >= 1,
          "data.synthetic needs n_subjects >= 3 and recordings_per_subject >= 1")
    check(d.synthetic.n_subjects * d.synthetic.recordings_per_subject <= MAX_SIMULATED,
          f"data.synthetic asks for {d.synthetic.n_subjects * d.synthetic.recordings_per_subject:,} recordings; at "
          f"most {MAX_SIMULATED:,} fit in memory (n_subjects x recordings_per_subject)")
    check(cfg.loader.batch_size >= 1, f"loader.batch_size must be >= 1, got {cfg.loader.batch_size}")
    if 0 < d.sample_rate_hz <= 1e6:
        ph = cfg.physiology
        record_ms = d.sequence_length * 1000.0 / d.sample_rate_hz
        for problem in window_problems(ph.waves, ph.primary_wave, ph.delay_ms, d.species, record_ms):
            check(False, problem)


def _model(cfg: TrainConfig, check: Checks) -> None:
    m = cfg.model
    check(m.static_dim >= 0, f"model.static_dim must be >= 0 (it follows the data's conditions), got {m.static_dim}")
    check(m.input_channels == 1, "model.input_channels must be 1 (one ABR channel)")
    check(m.d_model >= 1 and m.n_layers >= 1 and m.n_heads >= 1 and m.ff_mult >= 1,
          "model.d_model, n_layers, n_heads and ff_mult must be >= 1")
    check(m.n_heads < 1 or m.d_model % m.n_heads == 0,
          f"model.n_heads ({m.n_heads}) must divide model.d_model ({m.d_model})")
    check(0 <= m.dropout < 1, f"model.dropout must be in [0, 1), got {m.dropout}")
    check(len(m.stem_kernels) >= 1 and all(k >= 1 and k % 2 == 1 for k in m.stem_kernels),
          f"model.stem_kernels must be odd sizes >= 1, got {m.stem_kernels}")
    check(m.conv_kernel_size >= 1 and m.conv_kernel_size % 2 == 1, "model.conv_kernel_size must be odd")


def _trainer_viz(cfg: TrainConfig, check: Checks) -> None:
    t, v, a = cfg.trainer, cfg.viz, cfg.advanced
    check(t.max_epochs >= 1, f"trainer.max_epochs must be >= 1, got {t.max_epochs}")
    for key in ("validate_every_epochs", "sample_every_epochs", "save_every_epochs", "log_every_steps"):
        check(getattr(t, key) >= 1, f"trainer.{key} must be >= 1, got {getattr(t, key)}")
    check(all(e >= 1 for e in t.sample_epochs), f"trainer.sample_epochs must be epochs >= 1, got {t.sample_epochs}")
    check(8 <= t.sample_conditions <= 4096, f"trainer.sample_conditions must be in [8, 4096] (the metrics need "
                                             f"a few recordings of each kind), got {t.sample_conditions}")
    check(t.keep_last_k >= 0 and t.early_stop_patience >= 0,
          "trainer.keep_last_k and trainer.early_stop_patience must be >= 0")
    check(t.early_stop_min_delta >= 0, f"trainer.early_stop_min_delta must be >= 0, got {t.early_stop_min_delta:g}")
    for key in ("num_samples", "num_reference_plots", "max_spectrogram_plots"):
        check(getattr(v, key) >= 1, f"viz.{key} must be >= 1, got {getattr(v, key)}")
    check(v.figsize is None or (len(v.figsize) == 2 and all(0 < x <= 100 for x in v.figsize)),
          f"viz.figsize must be [width, height] in inches, each in (0, 100], got {v.figsize}")
    check(0 <= a.cfg_dropout_prob < 1, f"advanced.cfg_dropout_prob must be in [0, 1), got {a.cfg_dropout_prob}")
    check(a.lr_warmup_steps >= 0 and 0 <= a.min_lr_ratio <= 1 and 0 <= a.torch_threads <= MAX_THREADS,
          f"advanced.lr_warmup_steps >= 0, 0 <= min_lr_ratio <= 1 and 0 <= torch_threads <= {MAX_THREADS} are "
          "required")
    check(all(s in CFG_SCALE for s in a.val_sample_cfg_scales) and len(a.val_sample_cfg_scales) <= MAX_EXTRA_CFG_SCALES,
          f"advanced.val_sample_cfg_scales must be at most {MAX_EXTRA_CFG_SCALES} scales, each in {CFG_SCALE}, "
          f"got {a.val_sample_cfg_scales}")
    r = cfg.reproducibility
    check(not (r.deterministic and r.benchmark),
          "reproducibility.benchmark: true picks convolution algorithms by timing them, which is not deterministic; "
          "set benchmark: false with deterministic: true")


def _diffusion_optim(cfg: TrainConfig, check: Checks) -> None:
    df, o, s = cfg.diffusion, cfg.optim, cfg.loss.stft
    check(df.num_train_steps >= 2, "diffusion.num_train_steps must be >= 2")
    check(1 <= df.sample_steps <= df.num_train_steps,
          f"diffusion.sample_steps must be in [1, num_train_steps={df.num_train_steps}], got {df.sample_steps}")
    check(df.ddim_eta in DDIM_ETA,
          f"diffusion.ddim_eta must be in {DDIM_ETA} (0 = DDIM, 1 = DDPM's noise), got {df.ddim_eta:g}")
    check(df.cfg_scale in CFG_SCALE, f"diffusion.cfg_scale must be in {CFG_SCALE}, got {df.cfg_scale:g}")
    check(0 < o.lr <= 1, f"optim.lr must be in (0, 1], got {o.lr:g}")
    check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "optim.betas must be two values in [0, 1)")
    check(0 <= o.weight_decay <= 1 and o.grad_clip >= 0,
          "optim.weight_decay must be in [0, 1] and optim.grad_clip >= 0")
    check(0 <= o.ema_decay < 1, f"optim.ema_decay must be in [0, 1), got {o.ema_decay}")
    check(cfg.loss.stft_weight >= 0, "loss.stft_weight must be >= 0")
    check(0 < s.eps < 1, f"loss.stft.eps must be in (0, 1), got {s.eps:g}")
    check(s.n_fft >= 4 and 1 <= s.hop_length and 1 <= s.win_length <= s.n_fft,
          "loss.stft needs n_fft >= 4, hop_length >= 1 and 1 <= win_length <= n_fft")
    check(s.n_fft * (2 if s.multi_resolution else 1) <= SEQUENCE_LENGTH,
          f"loss.stft.n_fft ({s.n_fft}, doubled with multi_resolution) must not exceed {SEQUENCE_LENGTH}")


def _plain(name: str) -> str:
    """A plain name close to `name`, for the fix in the message."""
    return re.sub(r"[^\w.+-]+", "_", name).strip("._+-") or "my_run"
