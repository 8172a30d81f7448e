"""TimeSformer with divided space-time attention (Bertasius et al., "Is Space-Time Attention All You Need
for Video Understanding?", ICML 2021).

Each block attends over time (each patch position with itself in the other frames), then over space
(patches of one frame, plus the CLS token), then applies the MLP: T + N tokens per attention instead of
T * N, which is what makes attention over video affordable.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange, repeat
from torch import nn

from lit_video.models.layers import Attention, Mlp, init_transformer_weights, resize_embedding
from lit_video.models.registry import register_model


class DividedSpaceTimeBlock(nn.Module):
    """Temporal attention, spatial attention, MLP; each pre-norm with a residual.

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / dim.
        dropout: dropout after attention projections and in the MLP.
        attn_dropout: dropout on attention weights.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, attn_dropout: float = 0.0):
        super().__init__()
        self.temporal_norm = nn.LayerNorm(dim, eps=1e-6)
        self.temporal_attn = Attention(dim, num_heads, attn_dropout=attn_dropout, proj_dropout=dropout)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, attn_dropout=attn_dropout, proj_dropout=dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout=dropout)

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        # x: (B, 1 + T*N, D), the CLS token first, then frame-major patch tokens
        b = x.shape[0]
        cls, patches = x[:, :1], x[:, 1:]

        # Time: every patch position attends to itself across the T frames.
        xt = rearrange(patches, "b (t n) d -> (b n) t d", t=t)
        xt = self.temporal_attn(self.temporal_norm(xt))
        patches = patches + self.temporal_fc(rearrange(xt, "(b n) t d -> b (t n) d", b=b))

        # Space: the patches of each frame attend to each other and to a per-frame copy of CLS.
        xs = rearrange(patches, "b (t n) d -> (b t) n d", t=t)
        xs = torch.cat([repeat(cls, "b 1 d -> (b t) 1 d", t=t), xs], dim=1)  # (B*T, 1 + N, D)
        xs = self.attn(self.norm1(xs))
        cls_update = rearrange(xs[:, :1], "(b t) 1 d -> b t d", b=b).mean(dim=1, keepdim=True)  # (B, 1, D)
        patch_update = rearrange(xs[:, 1:], "(b t) n d -> b (t n) d", b=b)
        x = torch.cat([cls, patches], dim=1) + torch.cat([cls_update, patch_update], dim=1)

        return x + self.mlp(self.norm2(x))


def sinusoidal_embedding(length: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The sine / cosine position table of "Attention Is All You Need" -> (length, dim).

    Args:
        length: positions 0 .. length - 1.
        dim: embedding width; even channels hold sines, odd channels cosines (an odd last channel a sine).
        base: the longest wavelength is 2 pi * base.
    """
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(-math.log(base) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (ceil(dim/2),)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


@register_model("timesformer", tiny=dict(patch_size=8, embed_dim=32, depth=2, num_heads=2))
class TimeSformer(nn.Module):
    """TimeSformer (divided space-time attention), CLS-token classifier.

    Initialisation: Xavier-uniform linears, truncated-normal (std 0.02) CLS token and position embedding, a
    sinusoidal (learned) time embedding, and the temporal residual of every block after the first at zero.

    Args:
        num_classes: number of output logits.
        img_size: frame side of the native positional grid; other sizes interpolate it (bilinear).
        num_frames: frames of the native temporal embedding; other clip lengths interpolate it (linear).
        patch_size: side of the square patches (a frame smaller than a patch yields no tokens).
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / embed_dim.
        dropout: dropout on embeddings, attention projections and MLPs.
        attn_dropout: dropout on attention weights.
    """

    def __init__(
        self,
        num_classes: int,
        img_size: int = 224,
        num_frames: int = 8,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
    ):
        super().__init__()
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.num_frames = num_frames
        # Per-frame 2D patches, as in the paper (the time axis is left to the temporal attention).
        self.patch_embed = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))  # CLS + grid
        self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            DividedSpaceTimeBlock(embed_dim, num_heads, mlp_ratio, dropout, attn_dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.num_features = embed_dim
        self.head = nn.Linear(embed_dim, num_classes)

        init_transformer_weights(self)
        # Xavier-uniform linears, as the official ViT (JAX) and MAE code: the fixed std of 0.02 suits widths
        # near 768; at small widths it makes every residual branch a product of near-zero matrices (three in
        # the temporal branch: value, projection, temporal_fc), so time attention gets almost no gradient and
        # a small TimeSformer trained from scratch stays at chance on classes that differ only by motion.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        for p in (self.cls_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        # The time embedding, the only source of frame order, starts as the sinusoidal table of Vaswani et
        # al. (still learned): at std 0.02 it was ~1/20 of the patch features and order was learned late or
        # never; sinusoids also make "the next / previous frame" one linear map for the attention to learn.
        with torch.no_grad():
            self.time_embed.copy_(sinusoidal_embedding(num_frames, embed_dim)[None])
        for i, block in enumerate(self.blocks):
            if i > 0:
                # As the reference code: later blocks start with temporal attention switched off (the
                # temporal residual is zero), so training begins from an image model and learns time.
                nn.init.zeros_(block.temporal_fc.weight)
                nn.init.zeros_(block.temporal_fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> CLS token (B, D)."""
        b, _, t = x.shape[:3]
        x = self.patch_embed(rearrange(x, "b c t h w -> (b t) c h w"))  # (B*T, D, H/p, W/p)
        grid = tuple(x.shape[2:])
        x = rearrange(x, "(b t) d gh gw -> b t (gh gw) d", b=b)

        pos = resize_embedding(self.pos_embed, self.grid, grid, num_prefix_tokens=1)  # (1, 1 + N, D)
        time = resize_embedding(self.time_embed, (self.num_frames,), (t,))  # (1, T, D)
        x = x + pos[:, None, 1:] + time[:, :, None]  # (B, T, N, D)
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)  # (B, 1, D)
        x = self.pos_drop(torch.cat([cls, rearrange(x, "b t n d -> b (t n) d")], dim=1))  # (B, 1 + T*N, D)

        for block in self.blocks:
            x = block(x, t)
        return self.norm(x)[:, 0]

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, num_classes)."""
        return self.head(feats)
