"""Building blocks shared by the video transformers and frame models (not registered)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

# Optical flow arrives in pixels of the delivered clip (lit_video.video.flow); models divide it by this
# so that typical motions (a few pixels per frame) are of the order of the normalized RGB channels.
FLOW_SCALE = 10.0


def pad_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Repeat the last frame of `x` (B, C, T, H, W) until it has `num_frames` frames (no-op if it has).

    Used where a layer spans several frames (tubelets, early fusion) and a sweep asks for a shorter clip:
    a repeated frame is "no motion", which is better than zeros, a brightness change the model never saw.
    """
    missing = num_frames - x.shape[2]
    if missing <= 0:
        return x
    return torch.cat([x, x[:, :, -1:].expand(-1, -1, missing, -1, -1)], dim=2)


def resize_embedding(
    embed: torch.Tensor,
    old_size: tuple[int, ...],
    new_size: tuple[int, ...],
    num_prefix_tokens: int = 0,
    force: bool = False,
) -> torch.Tensor:
    """Interpolate a learned position embedding laid out on a 1D/2D/3D grid to another grid.

    Args:
        embed: (1, P + prod(old_size), D), the first P = `num_prefix_tokens` (e.g. CLS) are left as-is.
        old_size: the grid the embedding was learned on, e.g. (T,) or (H, W).
        new_size: the grid of the current input.
        num_prefix_tokens: leading tokens that are not on the grid.
        force: interpolate even when the sizes are equal (an identity; lets tests run the code path).

    Returns:
        (1, P + prod(new_size), D); linear / bilinear / trilinear by the grid's rank.
    """
    old_size, new_size = tuple(old_size), tuple(new_size)
    if old_size == new_size and not force:
        return embed
    prefix, grid = embed[:, :num_prefix_tokens], embed[:, num_prefix_tokens:]
    assert grid.shape[1] == math.prod(old_size), (grid.shape, old_size)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(old_size)]
    grid = grid.transpose(1, 2).reshape(1, -1, *old_size)  # (1, D, *old_size)
    # align_corners=False: at equal sizes every output sample falls exactly on an input sample.
    grid = F.interpolate(grid, size=new_size, mode=mode, align_corners=False)
    grid = grid.flatten(2).transpose(1, 2)  # (1, prod(new_size), D)
    return torch.cat([prefix, grid], dim=1)


class Attention(nn.Module):
    """Multi-head self-attention through `F.scaled_dot_product_attention` (fused kernels where available).

    Args:
        dim: token width.
        num_heads: heads; `dim` must divide by it.
        qkv_bias: bias on the q/k/v projection.
        attn_dropout: dropout on the attention weights (training only).
        proj_dropout: dropout after the output projection.
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_dropout: float = 0.0, proj_dropout: float = 0.0
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, N, D)
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)
        x = rearrange(x, "b h n d -> b n (h d)")
        return self.proj_drop(self.proj(x))  # (B, N, D)


class Mlp(nn.Module):
    """Linear-GELU-Linear feed-forward block of a transformer."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, attn_dropout: float = 0.0
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, attn_dropout=attn_dropout, proj_dropout=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_transformer_weights(module: nn.Module) -> None:
    """ViT initialisation: truncated-normal linears (std 0.02), zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
