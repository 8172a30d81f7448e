"""Shared parts of the video object segmentation models (not registered): the interface every VOS model
implements, padding to the encoder's stride, a ResNet-like encoder with features at strides 4, 8 and 16
(or only the finer ones), and a decoder that climbs back to full resolution through skip connections. The
VIS models use the same encoder and padding.

A VOS model segments a video one frame at a time against a per-video memory:

    memory = model.new_memory()
    model.memorize(frame0, first_masks, memory)      # (B,3,H,W), (B,K,H,W) soft masks in [0, 1]
    logits = model.segment(frame1, memory)           # (B,K,H,W) per-object foreground logits
    model.memorize(frame1, probabilities, memory)    # what the task decided each object covers

Combining the K per-object logits into one distribution per pixel (soft aggregation) is the task's job.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.models.resnet import BasicBlock, conv1x1

from lit_video.errors import LitVideoError
from lit_video.models.weights import load_cached_weights, load_weights

VOS_BACKBONES = ("small", "resnet18")


class VOSModel(nn.Module):
    """Base class of the semi-supervised VOS models: per-video state lives in a memory object that the
    caller owns, so one network can segment several videos at once (one memory each).

    Objects are addressed by index 0..K-1; K may grow between `memorize` calls (an object that first
    appears mid-video), never shrink. Frames are ImageNet-normalized (B,3,H,W) of any size (padded
    internally to the encoder's stride and cropped back).
    """

    def new_memory(self) -> object:
        """A fresh per-video state (a plain object holding tensors)."""
        raise NotImplementedError

    def segment(self, frame: torch.Tensor, memory: object) -> torch.Tensor:
        """frame (B,3,H,W) -> per-object foreground logits (B,K,H,W) for the K objects in `memory`."""
        raise NotImplementedError

    def memorize(self, frame: torch.Tensor, masks: torch.Tensor, memory: object) -> None:
        """Add `frame` (B,3,H,W) and its per-object soft masks (B,K,H,W) in [0, 1] to `memory`."""
        raise NotImplementedError

    def forward(self, frame: torch.Tensor, memory: object) -> torch.Tensor:
        """Inference on one frame: the same as `segment`."""
        return self.segment(frame, memory)


def check_masks(frame: torch.Tensor, masks: torch.Tensor, known_objects: int) -> None:
    """Shapes of a `memorize` call: frame (B,3,H,W), masks (B,K,H,W) with K >= the objects already known."""
    same_size = masks.shape[0] == frame.shape[0] and masks.shape[2:] == frame.shape[2:]
    if frame.ndim != 4 or masks.ndim != 4 or not same_size:
        raise ValueError(f"memorize needs frame (B,3,H,W) and masks (B,K,H,W) of the same B, H, W; got "
                         f"{tuple(frame.shape)} and {tuple(masks.shape)}")
    if masks.shape[1] < max(known_objects, 1):
        raise ValueError(f"memorize got {masks.shape[1]} object masks but memory already holds "
                         f"{known_objects} objects (objects can be added, not removed; pass empty masks for "
                         f"finished ones)")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom and right of (..., H, W) up to multiples of `multiple` (no copy if already so).

    Zeros are the dataset mean of a normalized frame and "no object" in a mask; the padded border is
    cropped away from the output, so it only has to be neutral.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))


def _group_norm(channels: int) -> nn.GroupNorm:
    # GroupNorm rather than BatchNorm: VOS batches are small (a few clips, each object a separate sample)
    # and a 16x16 crop leaves a 1x1 map at stride 16, where BatchNorm in training mode fails outright.
    return nn.GroupNorm(math.gcd(channels, 8), channels)


ENCODER_STRIDES = (4, 8, 16)


class FeatureEncoder(nn.Module):
    """A ResNet-like CNN -> feature maps at strides 4, 8 and 16 (up to `out_stride`).

    Args:
        in_channels: input channels (3 for a frame, more when masks are stacked onto it).
        backbone: "small" (GroupNorm ResNet of `width` / `blocks`) or "resnet18" (torchvision's ResNet-18
            stem and layer1-3, BatchNorm, 64/128/256 channels).
        width: channels at stride 4 of the small backbone; doubled at strides 8 and 16.
        blocks: residual blocks per stage of the small backbone.
        pretrained: resnet18 only: load torchvision's ImageNet weights from the torch hub cache (never
            downloads); filters for input channels beyond RGB start at zero, so a pretrained encoder first
            sees the frame alone and learns to use the masks.
        out_stride: the coarsest stride computed (4, 8 or 16); the stages beyond it are not built.
    """

    def __init__(self, in_channels: int = 3, backbone: str = "small", width: int = 64, blocks: int = 2,
                 pretrained: bool = False, out_stride: int = 16):
        super().__init__()
        if out_stride not in ENCODER_STRIDES:
            raise LitVideoError(f"VOS encoder out_stride must be one of {ENCODER_STRIDES}, got {out_stride}")
        self.num_stages = ENCODER_STRIDES.index(out_stride) + 1
        if backbone == "resnet18":
            net = resnet18(weights=None)
            if in_channels != 3:
                net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            # torchvision's attribute names, so ImageNet state_dicts load without renaming
            self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
            self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
            self.channels = (64, 128, 256)[: self.num_stages]
        elif backbone == "small":
            if pretrained:
                raise LitVideoError("the 'small' VOS backbone has no pretrained weights; "
                                    "use backbone='resnet18'")
            if width < 1 or blocks < 1:
                raise LitVideoError(f"VOS encoder width and blocks must be >= 1, got width={width}, "
                                    f"blocks={blocks}")
            self.stem = nn.Sequential(  # two stride-2 3x3 convolutions: cheaper than ResNet's 7x7 + max-pool
                nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
                _group_norm(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False),
                _group_norm(width),
                nn.ReLU(inplace=True),
            )
            self.layer1 = self._stage(width, width, blocks, stride=1)
            self.layer2 = self._stage(width, 2 * width, blocks, stride=2)
            self.layer3 = self._stage(2 * width, 4 * width, blocks, stride=2)
            self.channels = (width, 2 * width, 4 * width)[: self.num_stages]
        else:
            raise LitVideoError(f"unknown VOS backbone '{backbone}'; known backbones: "
                                f"{', '.join(VOS_BACKBONES)}")
        for unused in ("layer2", "layer3")[self.num_stages - 1:]:
            delattr(self, unused)  # stages past out_stride: no parameters that never train
        if pretrained:
            self._load_imagenet(in_channels)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride), _group_norm(out_channels))
        layers = [BasicBlock(in_channels, out_channels, stride, downsample, norm_layer=_group_norm)]
        layers += [BasicBlock(out_channels, out_channels, norm_layer=_group_norm) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def _load_imagenet(self, in_channels: int) -> None:
        weights = ResNet18_Weights.IMAGENET1K_V1
        state = dict(load_cached_weights(weights))
        rgb = state["conv1.weight"]  # (64, 3, 7, 7)
        if in_channels != 3:
            extra = rgb.new_zeros(rgb.shape[0], in_channels - 3, *rgb.shape[2:])
            state["conv1.weight"] = torch.cat([rgb, extra], dim=1)
        dropped = ("layer2.", "layer3.", "layer4.")[self.num_stages - 1:]
        load_weights(self, state, source=str(weights), ignore_prefixes=(*dropped, "fc."))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(N, C_in, H, W), H and W multiples of out_stride -> (f4, f8, f16) at strides 4, 8, 16, finest
        first, cut after out_stride (e.g. (f4, f8) for out_stride 8)."""
        if hasattr(self, "stem"):
            x = self.stem(x)
        else:  # torchvision's ResNet stem
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = [self.layer1(x)]  # (N, c4, H/4, W/4)
        for name in ("layer2", "layer3")[: self.num_stages - 1]:
            features.append(getattr(self, name)(features[-1]))  # (N, c8, H/8, W/8), (N, c16, H/16, W/16)
        return tuple(features)


class FineEncoder(nn.Module):
    """Frame -> features at strides 1 and 2, the skips that let a decoder draw boundaries finer than the
    encoder's stride-4 grid (thin parts and corners of small objects are 1-3 cells there).

    Args:
        in_channels: input channels.
        channels: features at stride 1; twice as many at stride 2.
    """

    def __init__(self, in_channels: int = 3, channels: int = 8):
        super().__init__()
        self.channels = (channels, 2 * channels)  # stride 1, stride 2
        self.full = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.halved = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C_in, H, W), H and W even -> (N, c, H, W), (N, 2c, H/2, W/2)."""
        full = self.full(x)
        return full, self.halved(full)


class ResBlock(nn.Module):
    """Pre-activation residual block without normalization, 1x1 projection when channels change.

    Written here because torchvision's BasicBlock has bias-free convolutions made for a following norm
    layer; the decoders work without normalization (as STM's and STCN's do), so they need the biases.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return self.skip(x) + out


class UpBlock(nn.Module):
    """x2 upsampling with a skip connection: skip (N, c_skip, 2h, 2w), up (N, c_up, h, w)
    -> (N, c_out, 2h, 2w).

    The skip may also be one per frame for the frame's K objects, (N/K, c_skip, 2h, 2w): it is then
    projected once and shared, K times cheaper than projecting K copies."""

    def __init__(self, skip_channels: int, up_channels: int, out_channels: int):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, up_channels, 3, padding=1)
        self.block = ResBlock(up_channels, out_channels)

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(up, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        skip = self.skip_conv(skip)
        if skip.shape[0] != up.shape[0]:
            skip = per_object(skip, up.shape[0] // skip.shape[0])  # (N, c_up, 2h, 2w)
        return self.block(skip + up)


class SkipDecoder(nn.Module):
    """Coarse features -> one logit map at full resolution, through the encoder's finer features as skips
    (e.g. 16 -> 8 -> 4 with learned layers, then 4 -> 1 bilinear).

    Args:
        in_channels: channels of the coarse input.
        skip_channels: channels of the skip features, finest first (c4, c8 for a stride-16 input; c4 for
            stride 8; empty for stride 4).
        width: channels after the input block; halved at each upsampling.
    """

    def __init__(self, in_channels: int, skip_channels: tuple[int, ...], width: int = 128):
        super().__init__()
        self.compress = ResBlock(in_channels, width)
        widths = [max(width // 2**k, 1) for k in range(len(skip_channels) + 1)]  # coarse to fine
        self.ups = nn.ModuleList(
            UpBlock(skip, widths[k], widths[k + 1]) for k, skip in enumerate(reversed(skip_channels))
        )
        self.predict = nn.Conv2d(widths[-1], 1, 3, padding=1)

    def forward(self, x: torch.Tensor, skips: tuple[torch.Tensor, ...], size: tuple[int, ...]) -> torch.Tensor:
        """x (N, C, h, w), skips finest first, each twice the size of the next (e.g. f4 (N, c4, 4h, 4w),
        f8 (N, c8, 2h, 2w)), each either per sample or per frame of N/K frames of K objects
        -> logits (N, 1, *size)."""
        x = self.compress(x)  # (N, width, h, w)
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            x = up(skip, x)  # x2 size, half the channels
        # no ReLU in front: with few channels at stride 4, a ReLU there can go dead in every channel at
        # once and leave only the bias (a constant prediction)
        logits = self.predict(x)  # (N, 1, 4h, 4w) for a stride-16 input
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def per_object(x: torch.Tensor, num_objects: int) -> torch.Tensor:
    """(B, ...) -> (B*K, ...): each sample repeated for its K objects, object-major within a sample."""
    return x.unsqueeze(1).expand(x.shape[0], num_objects, *x.shape[1:]).flatten(0, 1)


def local_attention(feature: torch.Tensor, previous: torch.Tensor, radius: int) -> torch.Tensor:
    """Each cell of `feature` attending to the cells of `previous` within `radius` cells either way.

    Args:
        feature: (B,C,h,w) this frame's features.
        previous: (B,C,h,w) the previous frame's features.
        radius: cells searched either way.

    Returns:
        (B,D,h,w) float32 softmax weights over the D = (2 radius + 1)^2 offsets (scaled dot products).
    """
    batch, channels, height, width = feature.shape
    size = 2 * radius + 1
    # float32: the softmax over dot products is where bf16 loses the ranking
    keys = F.unfold(previous.float(), size, padding=radius).view(batch, channels, size * size, height, width)
    return ((feature.float()[:, :, None] * keys).sum(dim=1) / channels ** 0.5).softmax(dim=1)


def carry_mask(attention: torch.Tensor, mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(B,1,h,w) a previous mask carried to this frame: the `local_attention`-weighted mean of it."""
    batch, window, height, width = attention.shape
    values = F.unfold(mask.float(), 2 * radius + 1, padding=radius).view(batch, window, height, width)
    return (attention * values).sum(dim=1, keepdim=True).to(mask.dtype)
