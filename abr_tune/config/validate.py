"""Cross-field and range checks of a built TrainConfig; each failure names the key and the fix."""

from __future__ import annotations

from ..errors import UserError
from .schema import SEQUENCE_LENGTH, STATIC_NAMES, TrainConfig


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
