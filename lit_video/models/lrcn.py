"""LRCN: a 2D CNN per frame feeding an LSTM (Donahue et al., "Long-term Recurrent Convolutional Networks
for Visual Recognition and Description", CVPR 2015)."""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.frame_encoders import build_frame_encoder
from lit_video.models.registry import register_model


@register_model("lrcn", tiny=dict(backbone="small", width=16, hidden_size=32))
class LRCN(nn.Module):
    """Per-frame CNN features -> LSTM -> hidden states read out over time -> head.

    Args:
        num_classes: number of output logits.
        backbone: "resnet18" (torchvision) or "small" (a CPU-sized conv stack).
        pretrained: load ImageNet weights for resnet18 from the torch hub cache (never downloads).
        width: channels of the first layer of the "small" backbone.
        depth: layers of the "small" backbone.
        hidden_size: LSTM width.
        num_layers: stacked LSTM layers.
        readout: "mean" of the hidden states over time (the paper averages per-frame predictions, the
            same thing before a linear head) or the "last" one.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: Literal["resnet18", "small"] = "resnet18",
        pretrained: bool = False,
        width: int = 32,
        depth: int = 4,
        hidden_size: int = 256,
        num_layers: int = 1,
        readout: Literal["mean", "last"] = "mean",
        dropout: float = 0.5,
    ):
        super().__init__()
        if readout not in ("mean", "last"):
            raise LitVideoError(f"readout must be 'mean' or 'last', got '{readout}'")
        self.readout = readout
        self.encoder = build_frame_encoder(backbone, pretrained=pretrained, width=width, depth=depth)
        self.lstm = nn.LSTM(self.encoder.out_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.num_features = hidden_size
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, hidden_size)."""
        b = x.shape[0]
        feats = self.encoder(rearrange(x, "b c t h w -> (b t) c h w"))  # all frames in one batch: (B*T, D)
        hidden, _ = self.lstm(rearrange(feats, "(b t) d -> b t d", b=b))  # (B, T, hidden_size)
        return hidden.mean(dim=1) if self.readout == "mean" else hidden[:, -1]

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, num_classes)."""
        return self.head(self.head_drop(feats))
