"""2D CNNs applied to single frames, shared by the frame baselines, two-stream, LRCN and ConvLSTM (not
registered).

Every encoder exposes its first convolution as `conv1` and the rest as `forward_after_conv1`, so early
fusion can swap `conv1` for a 3D convolution over several frames; `forward_stages` runs the rest stage by
stage with a hook between stages, so slow fusion can merge neighbouring frames as the map shrinks.
An encoder takes any number of input channels (RGB, optical flow, both, or a stack of flow frames).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from lit_video.errors import LitVideoError
from lit_video.models.layers import FLOW_SCALE
from lit_video.models.weights import load_cached_weights, load_weights
from lit_video.video.flow import MODALITY_CHANNELS

BACKBONES = ("resnet18", "small")
# Input channels of each modality a DataModule delivers: RGB, flow (x, y), or RGB then flow.

StageHook = Callable[[int, torch.Tensor], torch.Tensor]


def modality_channels(modality: str, model: str = "the model") -> int:
    """Input channels of `modality` ("rgb" 3, "flow" 2, "rgb+flow" 5).

    Raises:
        LitVideoError: an unknown modality, naming `model` and the known ones.
    """
    if modality not in MODALITY_CHANNELS:
        raise LitVideoError(f"{model}: unknown modality {modality!r}; expected one of {', '.join(MODALITY_CHANNELS)}")
    return MODALITY_CHANNELS[modality]


def scale_flow(x: torch.Tensor, modality: str) -> torch.Tensor:
    """A clip (B, C, T, H, W) or frames (N, C, H, W) of `modality` with its flow channels divided by
    `FLOW_SCALE`: flow arrives in pixels (tens of them), RGB normalised to about unit range."""
    if modality == "flow":
        return x / FLOW_SCALE
    if modality == "rgb+flow":
        return torch.cat([x[:, :3], x[:, 3:] / FLOW_SCALE], dim=1)
    return x


def check_channels(x: torch.Tensor, modality: str, model: str) -> None:
    """Refuse a clip whose channel count is not `modality`'s (a model built for flow fed RGB, say)."""
    expected = MODALITY_CHANNELS[modality]
    if x.shape[1] != expected:
        raise LitVideoError(f"{model} built for modality '{modality}' expects {expected} input channels, got a clip "
                            f"of shape {tuple(x.shape)}; set the model's modality to the DataModule's")


class FrameEncoder(nn.Module):
    """Base class: a 2D CNN with `out_dim` output channels whose first layer is `conv1`.

    `stage_channels` lists the channels after each stage that `forward_stages` runs after `conv1`.
    """

    out_dim: int
    conv1: nn.Conv2d | None
    stage_channels: list[int]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> pooled features (N, D)."""
        return self.forward_map(x).mean(dim=(2, 3))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> feature map (N, D, h, w)."""
        return self.forward_after_conv1(self.conv1(x))

    def forward_after_conv1(self, x: torch.Tensor) -> torch.Tensor:
        """The output of `conv1` (N, C1, H', W') -> feature map (N, D, h, w)."""
        return self.forward_stages(x)

    def forward_stages(self, x: torch.Tensor, hook: StageHook | None = None) -> torch.Tensor:
        """The output of `conv1` -> feature map, calling `hook(i, x)` on the output of every stage i (its
        result goes on; it may change the batch size, e.g. merge frames)."""
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
        # one stage per layer after conv1 (conv1's own BN and ReLU open the first); depth 1: conv1's alone
        self.stage_channels = [width * 2 ** (i + 1) for i in range(depth - 1)] or [width]

    def forward_stages(self, x: torch.Tensor, hook: StageHook | None = None) -> torch.Tensor:
        x = torch.relu(self.bn1(x))
        if not len(self.layers):
            return hook(0, x) if hook else x
        for i in range(len(self.layers) // 3):
            x = self.layers[3 * i: 3 * i + 3](x)
            x = hook(i, x) if hook else x
        return x  # (N, D, H / 2**depth, W / 2**depth)


class ResNet18Encoder(FrameEncoder):
    """torchvision's ResNet-18 without its classifier (512 channels, stride 32).

    Args:
        pretrained: load torchvision's ImageNet weights from the torch hub cache (never downloads).
        in_channels: input channels; other than 3, `conv1` is rebuilt for them, from the ImageNet filters when
            pretrained (see `adapt_rgb_filters`).
        rgb_channels: with pretrained weights, how many leading input channels are RGB (3 or 0); the others
            (optical flow) get the RGB filters averaged over colour.
    """

    def __init__(self, pretrained: bool = False, in_channels: int = 3, rgb_channels: int = 3):
        super().__init__()
        net = resnet18(weights=None)
        if pretrained:
            weights = ResNet18_Weights.IMAGENET1K_V1
            load_weights(net, load_cached_weights(weights), source=str(weights))
        if in_channels != 3:
            conv = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            if pretrained:
                with torch.no_grad():
                    conv.weight.copy_(adapt_rgb_filters(net.conv1.weight, in_channels, rgb_channels))
            net.conv1 = conv
        # Same attribute names as torchvision, so ImageNet state_dicts load without renaming.
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_dim = 512
        self.stage_channels = [64, 128, 256, 512]

    def forward_stages(self, x: torch.Tensor, hook: StageHook | None = None) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(x)))
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            x = hook(i, x) if hook else x
        return x  # (N, 512, H / 32, W / 32)


def adapt_rgb_filters(weight: torch.Tensor, in_channels: int, rgb_channels: int = 3) -> torch.Tensor:
    """First-layer filters of an RGB network (O, 3, k, k) for `in_channels` inputs whose first
    `rgb_channels` (3 or 0) are RGB: those keep their filters, every other channel (optical flow) gets the
    filter averaged over colour, TSN's cross-modality initialisation."""
    if rgb_channels not in (0, 3) or in_channels < rgb_channels:
        raise LitVideoError(f"rgb_channels must be 0 or 3 (at most in_channels {in_channels}), got {rgb_channels}")
    mean = weight.mean(dim=1, keepdim=True)  # (O, 1, k, k)
    parts = [weight] if rgb_channels else []
    return torch.cat(parts + [mean.expand(-1, in_channels - rgb_channels, -1, -1)], dim=1)


def build_frame_encoder(
    backbone: str, pretrained: bool = False, width: int = 32, depth: int = 4, in_channels: int = 3,
    rgb_channels: int | None = None,
) -> FrameEncoder:
    """An encoder by name: "resnet18" (torchvision) or "small" (`width`, `depth`).

    Args:
        backbone: "resnet18" or "small".
        pretrained: ImageNet weights for resnet18 from the hub cache.
        width, depth: the "small" backbone's size.
        in_channels: input channels (3 RGB, 2 flow, 5 RGB and flow, 2L stacked flow frames).
        rgb_channels: leading RGB channels among them, for pretrained filters (default: 3 when
            `in_channels` is odd, else 0).
    """
    if rgb_channels is None:
        rgb_channels = 3 if in_channels % 2 else 0
    if backbone == "resnet18":
        return ResNet18Encoder(pretrained=pretrained, in_channels=in_channels, rgb_channels=rgb_channels)
    if backbone == "small":
        if pretrained:
            raise LitVideoError("the 'small' backbone has no pretrained weights; use backbone='resnet18'")
        return SmallConvEncoder(width=width, depth=depth, in_channels=in_channels)
    raise LitVideoError(f"unknown frame backbone '{backbone}'; known backbones: {', '.join(BACKBONES)}")
