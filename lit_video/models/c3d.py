"""C3D: 3x3x3 convolutions all the way down (Tran et al., "Learning Spatiotemporal Features with 3D
Convolutional Networks", ICCV 2015)."""

from __future__ import annotations

import torch
from torch import nn

from lit_video.models.registry import register_model

# (name, output channels); a pool follows conv1a, conv2a, conv3b, conv4b and conv5b.
_CONVS = (("1a", 64), ("2a", 128), ("3a", 256), ("3b", 256), ("4a", 512), ("4b", 512), ("5a", 512), ("5b", 512))
_POOL_AFTER = {"1a", "2a", "3b", "4b", "5b"}


@register_model("c3d", tiny=dict(width_mult=0.125, fc_dim=64, batch_norm=True))
class C3D(nn.Module):
    """C3D with the paper's layers; at 16x112x112 and `width_mult=1` it has exactly the paper's parameters.

    Args:
        num_classes: number of output logits.
        width_mult: scales every conv's channels (1.0 = the paper's 64...512).
        fc_dim: width of fc6 and fc7 (the paper: 4096).
        dropout: dropout after fc6 and fc7 (the paper: 0.5).
        batch_norm: BatchNorm after every conv (the common "C3D-BN" variant). The paper's network
            has none; without it a narrow C3D trained from scratch often never leaves chance.
    """

    def __init__(
        self, num_classes: int, width_mult: float = 1.0, fc_dim: int = 4096, dropout: float = 0.5,
        batch_norm: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for name, channels in _CONVS:
            channels = max(1, round(channels * width_mult))
            layers.append(nn.Conv3d(in_channels, channels, kernel_size=3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm3d(channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
            if name in _POOL_AFTER:
                layers.append(_pool(name))
        self.features = nn.Sequential(*layers)
        # At 16x112x112 pool5 already gives 1x4x4 and this is the identity (the paper's fc6 sees 512*4*4
        # inputs); other clip lengths and resolutions are averaged (or repeated) onto the same grid.
        self.pool = nn.AdaptiveAvgPool3d((1, 4, 4))
        self.fc6 = nn.Linear(in_channels * 16, fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.num_features = fc_dim
        self.head = nn.Linear(fc_dim, num_classes)  # fc8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> fc7 activations (B, fc_dim)."""
        x = self.features(x)  # (B, 512, T / 16, H / 32, W / 32), rounded up
        x = self.pool(x).flatten(1)  # (B, 512 * 16)
        x = self.drop(self.relu(self.fc6(x)))
        return self.relu(self.fc7(x))  # (B, fc_dim)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, fc_dim) -> (B, num_classes)."""
        return self.head(self.drop(feats))


def _pool(name: str) -> nn.MaxPool3d:
    if name == "1a":
        # The paper does not pool in time at first, "to not merge the temporal signal too early".
        return nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
    # ceil_mode: a map of odd length (or length 1, e.g. T=4 after three pools) is pooled to ceil(n/2)
    # instead of failing; at the paper's 16x112x112 every length is even and nothing changes.
    padding = (0, 1, 1) if name == "5b" else 0  # pool5's spatial padding: 7x7 -> 4x4 as in the paper
    return nn.MaxPool3d(kernel_size=2, stride=2, padding=padding, ceil_mode=True)
