"""2D CNNs applied to single frames, shared by the frame baselines, LRCN and ConvLSTM (not registered).

Every encoder exposes its first convolution as `conv1` and the rest as `forward_after_conv1`, so early
fusion can swap `conv1` for a 3D convolution over several frames.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from lit_video.errors import LitVideoError
from lit_video.models.weights import load_cached_weights, load_weights

BACKBONES = ("resnet18", "small")


class FrameEncoder(nn.Module):
    """Base class: a 2D CNN with `out_dim` output channels whose first layer is `conv1`."""

    out_dim: int
    conv1: nn.Conv2d | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> pooled features (N, D)."""
        return self.forward_map(x).mean(dim=(2, 3))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> feature map (N, D, h, w)."""
        return self.forward_after_conv1(self.conv1(x))

    def forward_after_conv1(self, x: torch.Tensor) -> torch.Tensor:
        """The output of `conv1` (N, C1, H', W') -> feature map (N, D, h, w)."""
        raise NotImplementedError


class SmallConvEncoder(FrameEncoder):
    """A CPU-sized stack of stride-2 3x3 conv-BN-ReLU layers, doubling the width at each layer.

    Args:
        width: channels of the first layer.
        depth: number of layers; the map shrinks by 2**depth and ends with width * 2**(depth - 1) channels.
        in_channels: input channels.
    """

    def __init__(self, width: int = 32, depth: int = 4, in_channels: int = 3):
        super().__init__()
        if depth < 1:
            raise LitVideoError(f"small encoder depth must be >= 1, got {depth}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        channels = width
        for _ in range(depth - 1):
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels * 2),
                nn.ReLU(inplace=True),
            ]
            channels *= 2
        self.layers = nn.Sequential(*layers)
        self.out_dim = channels

    def forward_after_conv1(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.relu(self.bn1(x)))  # (N, D, H / 2**depth, W / 2**depth)


class ResNet18Encoder(FrameEncoder):
    """torchvision's ResNet-18 without its classifier (512 channels, stride 32).

    Args:
        pretrained: load torchvision's ImageNet weights from the torch hub cache (never downloads).
    """

    def __init__(self, pretrained: bool = False):
        super().__init__()
        net = resnet18(weights=None)
        if pretrained:
            weights = ResNet18_Weights.IMAGENET1K_V1
            load_weights(net, load_cached_weights(weights), source=str(weights))
        # Same attribute names as torchvision, so ImageNet state_dicts load without renaming.
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_dim = 512

    def forward_after_conv1(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, 512, H / 32, W / 32)


def build_frame_encoder(backbone: str, pretrained: bool = False, width: int = 32, depth: int = 4) -> FrameEncoder:
    """An encoder by name: "resnet18" (torchvision) or "small" (`width`, `depth`)."""
    if backbone == "resnet18":
        return ResNet18Encoder(pretrained=pretrained)
    if backbone == "small":
        if pretrained:
            raise LitVideoError("the 'small' backbone has no pretrained weights; use backbone='resnet18'")
        return SmallConvEncoder(width=width, depth=depth)
    raise LitVideoError(f"unknown frame backbone '{backbone}'; known backbones: {', '.join(BACKBONES)}")
