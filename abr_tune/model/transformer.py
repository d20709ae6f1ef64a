"""ABRTransformer: a v-predicting denoiser of 200-sample ABR waveforms.

x_t (B, 1, 200) -> multi-scale conv stem -> + learned positions -> pre-norm transformer
blocks, each FiLM-modulated by (timestep embedding + static condition) -> LayerNorm +
linear head -> v̂ (B, 1, 200). The model knows nothing about the noise schedule.
Dropout acts on each sub-layer's output (attention, conv, feed-forward) before the residual
add, not on the attention weights: that keeps SDPA on its fused kernel (~4x faster on CPU).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig

TIME_FREQ_DIM = 128  # width of the sinusoidal timestep features (64 frequencies)


def timestep_embedding(t: Tensor, dim: int = TIME_FREQ_DIM, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of integer timesteps (Vaswani et al. 2017; as in DDPM): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MultiScaleStem(nn.Module):
    """Parallel 'same'-padded convs (one per kernel size) + GELU, fused by a 1x1 conv."""

    def __init__(self, in_channels: int, d_model: int, kernels: list[int]):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv1d(in_channels, d_model, k, padding=k // 2) for k in kernels)
        self.fuse = nn.Conv1d(d_model * len(kernels), d_model, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.cat([F.gelu(branch(x)) for branch in self.branches], dim=1)  # (B, K*C, T)
        # Contiguous (B, T, C): the residual stream would otherwise keep the conv's (B, C, T)
        # memory layout through every block and each LayerNorm and matmul would copy it.
        return self.fuse(h).transpose(1, 2).contiguous()  # (B, T, C)


class Dropout(nn.Dropout):
    """nn.Dropout with a ~2x cheaper mask on CPU: two 15-bit integer draws per 32-bit random
    number instead of a float bernoulli_ draw per element; p is rounded to a multiple of 1/32768."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or x.device.type != "cpu" or not 0 < self.p < 1:
            return super().forward(x)
        dropped = round(self.p * 32768)
        n = x.numel()
        # random_() on int32 draws 31 uniform bits: both int16 halves hold 15 of them.
        bits = torch.empty((n + 1) // 2, dtype=torch.int32).random_().view(torch.int16)[:n].view(x.shape)
        keep = (bits & 0x7FFF) >= dropped
        return x * (keep.to(x.dtype) * (32768 / (32768 - dropped)))


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v)  # no weight dropout: see the module docstring
        return self.drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))  # (B, T, C)


class ConvModule(nn.Module):
    """Depthwise conv over time + GELU + pointwise projection: local detail next to attention."""

    def __init__(self, d_model: int, kernel_size: int, dropout: float):
        super().__init__()
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model)
        self.pointwise = nn.Linear(d_model, d_model)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        # (B, T, C) seen as (B, C, 1, T) is already channels-last: a 2-D conv reads and writes
        # that layout directly, where Conv1d would copy to (B, C, T) and back.
        conv = self.depthwise
        h = F.conv2d(x.transpose(1, 2).unsqueeze(2), conv.weight.unsqueeze(2), conv.bias,
                     padding=(0, conv.padding[0]), groups=conv.groups)  # (B, C, 1, T), channels-last
        return self.drop(self.pointwise(F.gelu(h.squeeze(2).transpose(1, 2))))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm block; one FiLM (scale, shift) from the embedding modulates every sub-layer input."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.film = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.film.weight)  # zero-init: the block starts unconditioned
        nn.init.zeros_(self.film.bias)
        self.norm_attn = nn.LayerNorm(d)
        self.attn = SelfAttention(d, cfg.n_heads, cfg.dropout)
        self.norm_conv = nn.LayerNorm(d) if cfg.use_conv_module else None
        self.conv = ConvModule(d, cfg.conv_kernel_size, cfg.dropout) if cfg.use_conv_module else None
        self.norm_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(
            nn.Linear(d, cfg.ff_mult * d), nn.GELU(), nn.Linear(cfg.ff_mult * d, d), Dropout(cfg.dropout),
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(emb).unsqueeze(1).chunk(2, dim=-1)  # each (B, 1, C)

        def modulate(h: Tensor) -> Tensor:
            return torch.addcmul(shift, h, 1 + scale)  # h * (1 + scale) + shift in one pass

        x = x + self.attn(modulate(self.norm_attn(x)))
        if self.conv is not None:
            x = x + self.conv(modulate(self.norm_conv(x)))
        return x + self.ff(modulate(self.norm_ff(x)))  # (B, T, C)


class ABRTransformer(nn.Module):
    """Predicts v from (x_t, t, static); `null_cond` True swaps in the learned null condition (CFG)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.stem = MultiScaleStem(cfg.input_channels, d, cfg.stem_kernels)
        self.pos_emb = nn.Parameter(0.02 * torch.randn(cfg.sequence_length, d))
        self.time_mlp = nn.Sequential(nn.Linear(TIME_FREQ_DIM, d), nn.SiLU(), nn.Linear(d, d))
        with warnings.catch_warnings():  # static_dim 0 (every condition constant): an empty layer, its bias alone
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.static_mlp = nn.Sequential(nn.Linear(cfg.static_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.null_embedding = nn.Parameter(0.02 * torch.randn(d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.input_channels)

    def forward(self, x_t: Tensor, t: Tensor, static: Tensor, null_cond: Tensor | None = None) -> Tensor:
        """x_t (B, C_in, T), t (B,) long, static (B, S) normalised, null_cond (B,) bool -> v̂ (B, C_in, T)."""
        self._check_shapes(x_t, t, static, null_cond)
        cond = self.static_mlp(static)  # (B, C)
        if null_cond is not None:
            cond = torch.where(null_cond[:, None], self.null_embedding.to(cond.dtype), cond)
        emb = F.silu(self.time_mlp(timestep_embedding(t)) + cond)  # (B, C)
        h = self.stem(x_t) + self.pos_emb  # (B, T, C)
        for block in self.blocks:
            h = block(h, emb)
        return self.head(self.norm_out(h)).transpose(1, 2)  # (B, C_in, T)

    def _check_shapes(self, x_t: Tensor, t: Tensor, static: Tensor, null_cond: Tensor | None) -> None:
        c, length = self.cfg.input_channels, self.cfg.sequence_length
        if x_t.ndim != 3 or x_t.shape[1:] != (c, length):
            got = f"(B, {', '.join(map(str, x_t.shape[1:]))})" if x_t.ndim == 3 else str(tuple(x_t.shape))
            raise ValueError(f"ABRTransformer expects (B, {c}, {length}) waveforms, got {got}")
        batch = x_t.shape[0]
        if t.shape != (batch,):
            raise ValueError(f"ABRTransformer expects timesteps of shape ({batch},), got {tuple(t.shape)}")
        if static.shape != (batch, self.cfg.static_dim):
            raise ValueError(
                f"ABRTransformer expects static of shape ({batch}, {self.cfg.static_dim}), got {tuple(static.shape)}"
            )
        if null_cond is not None and (null_cond.shape != (batch,) or null_cond.dtype != torch.bool):
            raise ValueError(f"null_cond must be a bool tensor of shape ({batch},), got {null_cond.dtype} "
                             f"{tuple(null_cond.shape)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_example(cfg: ModelConfig) -> int:
    """Analytic forward FLOPs of one example: 2 x the MACs of every matmul, conv and attention product."""
    d, length, c_in = cfg.d_model, cfg.sequence_length, cfg.input_channels
    macs = length * d * c_in * sum(cfg.stem_kernels)  # stem branches
    macs += length * d * len(cfg.stem_kernels) * d  # 1x1 fuse
    macs += TIME_FREQ_DIM * d + d * d + cfg.static_dim * d + d * d  # time and static MLPs
    per_block = d * 2 * d  # FiLM projection
    per_block += length * d * 3 * d + 2 * length * length * d + length * d * d  # qkv, QK^T and AV, proj
    per_block += 2 * length * d * cfg.ff_mult * d  # feed-forward
    if cfg.use_conv_module:
        per_block += length * d * cfg.conv_kernel_size + length * d * d  # depthwise + pointwise
    macs += cfg.n_layers * per_block + length * d * c_in  # blocks + head
    return 2 * macs
