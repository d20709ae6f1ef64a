"""Diffusion math as pure functions of tensors: the cosine schedule and v-parameterisation (`schedule`),
DDIM sampling with classifier-free guidance (`ddim`), the training loss (`losses`)."""

from .ddim import ddim_sample, ddim_timesteps, guided_v
from .losses import LossTerms, diffusion_loss, multi_resolution_stft_loss, stft_resolutions
from .schedule import Schedule, cosine_alphas_cumprod, eps_from_v, q_sample, v_target, x_start_from_v

__all__ = ["LossTerms", "Schedule", "cosine_alphas_cumprod", "ddim_sample", "ddim_timesteps", "diffusion_loss",
           "eps_from_v", "guided_v", "multi_resolution_stft_loss", "q_sample", "stft_resolutions", "v_target",
           "x_start_from_v"]
