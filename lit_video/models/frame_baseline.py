"""Single-frame 2D CNN baselines and their temporal fusions (Karpathy et al., CVPR 2014).

Single frame: the 2D CNN sees the middle frame of the clip only. Late fusion: it sees every frame alone and
the clip is the average of per-frame features, so the model is blind to frame order. Early fusion: the first
convolution spans `early_frames` consecutive frames, so the model can see local motion before everything
else is 2D. Slow fusion: the first convolution spans `early_frames` frames with a temporal stride of 2, and
after every later stage neighbouring pairs of frames are merged (a learned 2-frame convolution, stride 2),
so the temporal extent grows with depth until one frame remains.

Every model takes `modality` ("rgb", "flow" or "rgb+flow": 3, 2 or 5 input channels); flow arrives in pixels
and is divided by `FLOW_SCALE`.
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.frame_encoders import build_frame_encoder, check_channels, modality_channels, scale_flow
from lit_video.models.layers import pad_frames
from lit_video.models.registry import register_model

_TINY = dict(backbone="small", width=16)
FUSIONS = ("single", "late", "early", "slow")
SLOW_STRIDE = 2  # the temporal stride of slow fusion's first convolution and of every merge after it


@register_model("frame_baseline", tiny=_TINY)
class FrameBaseline(nn.Module):
    """A per-frame 2D CNN with single-frame, late, early or slow temporal fusion.

    Args:
        num_classes: number of output logits.
        fusion: "single" (the middle frame only), "late" (average per-frame features), "early" (first conv
            is 3D over `early_frames`) or "slow" (first conv spans `early_frames` with stride 2, then frames
            merge pairwise after every stage).
        backbone: "resnet18" (torchvision) or "small" (a CPU-sized conv stack).
        pretrained: load ImageNet weights for resnet18 from the torch hub cache (never downloads); flow
            channels get the RGB filters averaged over colour.
        early_frames: temporal extent of the first convolution for early and slow fusion.
        width: channels of the first layer of the "small" backbone.
        depth: layers of the "small" backbone.
        dropout: dropout before the classifier.
        modality: "rgb", "flow" or "rgb+flow", what the DataModule delivers.
    """

    def __init__(
        self,
        num_classes: int,
        fusion: Literal["single", "late", "early", "slow"] = "late",
        backbone: Literal["resnet18", "small"] = "resnet18",
        pretrained: bool = False,
        early_frames: int = 4,
        width: int = 32,
        depth: int = 4,
        dropout: float = 0.5,
        modality: str = "rgb",
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise LitVideoError(f"fusion must be one of {', '.join(repr(f) for f in FUSIONS)}, got '{fusion}'")
        if isinstance(early_frames, bool) or not isinstance(early_frames, int) or early_frames < 1:
            raise LitVideoError(f"early_frames must be an integer >= 1, got {early_frames!r}")
        self.fusion = fusion
        self.modality = modality
        self.early_frames = early_frames
        in_channels = modality_channels(modality, f"frame model ({fusion} fusion)")
        self.encoder = build_frame_encoder(backbone, pretrained=pretrained, width=width, depth=depth,
                                           in_channels=in_channels)
        self.early_conv: nn.Conv3d | None = None
        if fusion in ("early", "slow"):
            stride = SLOW_STRIDE if fusion == "slow" else 1
            self.early_conv = _inflate(self.encoder.conv1, early_frames, copy_weights=pretrained, stride=stride)
            self.encoder.conv1 = None  # replaced by early_conv; keeping it would leave unused parameters
        self.merges: nn.ModuleList | None = None
        if fusion == "slow":
            self.merges = nn.ModuleList(_merge(c, copy_weights=pretrained) for c in self.encoder.stage_channels)
        self.num_features = self.encoder.out_dim
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, D)."""
        check_channels(x, self.modality, f"frame model ({self.fusion} fusion)")
        x = scale_flow(x, self.modality)
        b = x.shape[0]
        if self.fusion == "single":
            return self.encoder(x[:, :, x.shape[2] // 2])  # (B, D): the middle frame alone
        if self.fusion == "late":
            feats = self.encoder(rearrange(x, "b c t h w -> (b t) c h w"))  # (B*T, D)
            return rearrange(feats, "(b t) d -> b t d", b=b).mean(dim=1)  # (B, D)
        x = pad_frames(x, self.early_frames)  # clips shorter than the fused window repeat their last frame
        x = self.early_conv(x)  # (B, C1, T', H', W')
        if self.fusion == "early":
            x = x.mean(dim=2)  # (B, C1, H', W'): fusion is over; the rest of the network is 2D
            return self.encoder.forward_after_conv1(x).mean(dim=(2, 3))  # (B, D)

        def merge(stage: int, frames: torch.Tensor) -> torch.Tensor:
            clip = pad_frames(rearrange(frames, "(b t) c h w -> b c t h w", b=b), SLOW_STRIDE)
            if clip.shape[2] % SLOW_STRIDE:  # an odd count: the last frame pairs with itself
                clip = pad_frames(clip, clip.shape[2] + 1)
            return rearrange(self.merges[stage](clip), "b c t h w -> (b t) c h w")  # half the frames

        frames = self.encoder.forward_stages(rearrange(x, "b c t h w -> (b t) c h w"), hook=merge)
        # long clips may keep a few frames after the last merge: average them
        return rearrange(frames, "(b t) d h w -> b t d h w", b=b).mean(dim=(1, 3, 4))  # (B, D)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, num_classes)."""
        return self.head(self.head_drop(feats))


def _inflate(conv: nn.Conv2d, frames: int, copy_weights: bool, stride: int = 1) -> nn.Conv3d:
    """A Conv3d with `conv`'s channels, kernel, stride and padding in space, spanning `frames` in time with
    temporal `stride`."""
    conv3d = nn.Conv3d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=(frames, *conv.kernel_size),
        stride=(stride, *conv.stride),
        padding=(0, *conv.padding),
        bias=conv.bias is not None,
    )
    if copy_weights:
        # I3D inflation: the 2D filter repeated over time and divided by its length answers a static clip
        # exactly like the pretrained 2D filter answers one frame.
        with torch.no_grad():
            conv3d.weight.copy_(conv.weight.unsqueeze(2).expand_as(conv3d.weight) / frames)
            if conv.bias is not None:
                conv3d.bias.copy_(conv.bias)
    return conv3d


def _merge(channels: int, copy_weights: bool) -> nn.Conv3d:
    """Slow fusion's merge of neighbouring frames: a (2, 1, 1) convolution with temporal stride 2. Over
    pretrained layers it starts as the average of the two frames (a static clip passes unchanged)."""
    conv = nn.Conv3d(channels, channels, kernel_size=(SLOW_STRIDE, 1, 1), stride=(SLOW_STRIDE, 1, 1), bias=False)
    if copy_weights:
        with torch.no_grad():
            identity = torch.eye(channels)[:, :, None, None, None] / SLOW_STRIDE  # (C, C, 1, 1, 1)
            conv.weight.copy_(identity.expand_as(conv.weight))
    return conv


@register_model("frame_single", tiny=_TINY)
def frame_single(
    num_classes: int,
    backbone: Literal["resnet18", "small"] = "resnet18",
    pretrained: bool = False,
    width: int = 32,
    depth: int = 4,
    dropout: float = 0.5,
    modality: str = "rgb",
) -> FrameBaseline:
    """Single frame: the 2D CNN on the clip's middle frame. Args as `FrameBaseline`."""
    return FrameBaseline(num_classes, fusion="single", backbone=backbone, pretrained=pretrained, width=width,
                         depth=depth, dropout=dropout, modality=modality)


@register_model("frame_late", tiny=_TINY)
def frame_late(
    num_classes: int,
    backbone: Literal["resnet18", "small"] = "resnet18",
    pretrained: bool = False,
    width: int = 32,
    depth: int = 4,
    dropout: float = 0.5,
    modality: str = "rgb",
) -> FrameBaseline:
    """Late fusion: per-frame 2D CNN features averaged over time. Args as `FrameBaseline`."""
    return FrameBaseline(num_classes, fusion="late", backbone=backbone, pretrained=pretrained, width=width,
                         depth=depth, dropout=dropout, modality=modality)


@register_model("frame_early", tiny=_TINY)
def frame_early(
    num_classes: int,
    backbone: Literal["resnet18", "small"] = "resnet18",
    pretrained: bool = False,
    early_frames: int = 4,
    width: int = 32,
    depth: int = 4,
    dropout: float = 0.5,
    modality: str = "rgb",
) -> FrameBaseline:
    """Early fusion: the first convolution spans `early_frames` frames. Args as `FrameBaseline`."""
    return FrameBaseline(num_classes, fusion="early", backbone=backbone, pretrained=pretrained,
                         early_frames=early_frames, width=width, depth=depth, dropout=dropout, modality=modality)


@register_model("frame_slow", tiny=_TINY)
def frame_slow(
    num_classes: int,
    backbone: Literal["resnet18", "small"] = "resnet18",
    pretrained: bool = False,
    early_frames: int = 4,
    width: int = 32,
    depth: int = 4,
    dropout: float = 0.5,
    modality: str = "rgb",
) -> FrameBaseline:
    """Slow fusion: the first convolution spans `early_frames` frames (stride 2), then neighbouring frames
    merge pairwise after every stage until one remains. Args as `FrameBaseline`."""
    return FrameBaseline(num_classes, fusion="slow", backbone=backbone, pretrained=pretrained,
                         early_frames=early_frames, width=width, depth=depth, dropout=dropout, modality=modality)
