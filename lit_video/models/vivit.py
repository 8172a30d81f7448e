"""ViViT model 2, the factorised encoder (Arnab et al., "ViViT: A Video Vision Transformer", ICCV 2021).

Tubelets are embedded by a strided Conv3d; a spatial transformer encodes each temporal index on its own
(with its own CLS token); a temporal transformer then mixes the per-index CLS tokens. Late temporal
fusion keeps attention cost at t * N^2 + t^2 rather than (t * N)^2.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from lit_video.models.layers import Block, init_transformer_weights, pad_frames, resize_embedding
from lit_video.models.registry import register_model


@register_model(
    "vivit",
    tiny=dict(tubelet=(2, 8, 8), embed_dim=32, spatial_depth=2, temporal_depth=1, num_heads=2),
)
class ViViT(nn.Module):
    """ViViT factorised encoder with CLS tokens in both transformers.

    Args:
        num_classes: number of output logits.
        img_size: frame side of the native spatial positional grid; other sizes interpolate it (bilinear).
        num_frames: frames of the native temporal embedding (num_frames / tubelet[0] tokens); other clip
            lengths interpolate it (linear).
        tubelet: (t, h, w) size of one tubelet; clips are padded in time (last frame repeated) to a
            multiple of t, so no frame is dropped and T < t still works.
        embed_dim: token width.
        spatial_depth: blocks of the spatial transformer.
        temporal_depth: blocks of the temporal transformer.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / embed_dim.
        dropout: dropout on embeddings, attention projections and MLPs.
        attn_dropout: dropout on attention weights.
    """

    def __init__(
        self,
        num_classes: int,
        img_size: int = 224,
        num_frames: int = 32,
        tubelet: tuple[int, int, int] = (2, 16, 16),
        embed_dim: int = 768,
        spatial_depth: int = 12,
        temporal_depth: int = 4,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
    ):
        super().__init__()
        self.tubelet = tuple(tubelet)
        self.grid = (img_size // self.tubelet[1], img_size // self.tubelet[2])
        self.num_steps = max(1, math.ceil(num_frames / self.tubelet[0]))  # native temporal tokens
        self.tubelet_embed = nn.Conv3d(3, embed_dim, kernel_size=self.tubelet, stride=self.tubelet)
        self.spatial_cls = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.spatial_pos = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.temporal_cls = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.temporal_pos = nn.Parameter(torch.zeros(1, 1 + self.num_steps, embed_dim))
        self.pos_drop = nn.Dropout(dropout)
        self.spatial_blocks = nn.Sequential(
            *(Block(embed_dim, num_heads, mlp_ratio, dropout, attn_dropout) for _ in range(spatial_depth))
        )
        self.spatial_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.temporal_blocks = nn.Sequential(
            *(Block(embed_dim, num_heads, mlp_ratio, dropout, attn_dropout) for _ in range(temporal_depth))
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.num_features = embed_dim
        self.head = nn.Linear(embed_dim, num_classes)

        init_transformer_weights(self)
        for p in (self.spatial_cls, self.spatial_pos, self.temporal_cls, self.temporal_pos):
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> temporal CLS token (B, D)."""
        b, _, t = x.shape[:3]
        x = pad_frames(x, math.ceil(t / self.tubelet[0]) * self.tubelet[0])
        x = self.tubelet_embed(x)  # (B, D, t', H/h, W/w)
        steps, grid = x.shape[2], tuple(x.shape[3:])

        # Spatial transformer: each temporal index separately, with its own CLS token.
        x = rearrange(x, "b d s gh gw -> (b s) (gh gw) d")
        x = torch.cat([self.spatial_cls.expand(x.shape[0], -1, -1), x], dim=1)  # (B*t', 1 + N, D)
        x = self.pos_drop(x + resize_embedding(self.spatial_pos, self.grid, grid, num_prefix_tokens=1))
        x = self.spatial_norm(self.spatial_blocks(x))[:, 0]  # (B*t', D)

        # Temporal transformer over the per-index CLS tokens.
        x = rearrange(x, "(b s) d -> b s d", b=b)
        x = torch.cat([self.temporal_cls.expand(b, -1, -1), x], dim=1)  # (B, 1 + t', D)
        x = self.pos_drop(x + resize_embedding(self.temporal_pos, (self.num_steps,), (steps,), num_prefix_tokens=1))
        return self.norm(self.temporal_blocks(x))[:, 0]

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, num_classes)."""
        return self.head(feats)
