"""Single-frame 2D CNN baselines with late or early fusion (Karpathy et al., CVPR 2014).

Late fusion: the 2D CNN sees every frame alone and the clip is the average of per-frame features, so the
model is blind to frame order. Early fusion: the first convolution spans `early_frames` consecutive frames,
so the model can see local motion before everything else is 2D.
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.frame_encoders import build_frame_encoder
from lit_video.models.layers import pad_frames
from lit_video.models.registry import register_model

_TINY = dict(backbone="small", width=16)


@register_model("frame_baseline", tiny=_TINY)
class FrameBaseline(nn.Module):
    """A per-frame 2D CNN with late or early temporal fusion.

    Args:
        num_classes: number of output logits.
        fusion: "late" (average per-frame features) or "early" (first conv is 3D over `early_frames`).
        backbone: "resnet18" (torchvision) or "small" (a CPU-sized conv stack).
        pretrained: load ImageNet weights for resnet18 from the torch hub cache (never downloads).
        early_frames: temporal extent of the first convolution for early fusion.
        width: channels of the first layer of the "small" backbone.
        depth: layers of the "small" backbone.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int,
        fusion: Literal["late", "early"] = "late",
        backbone: Literal["resnet18", "small"] = "resnet18",
        pretrained: bool = False,
        early_frames: int = 4,
        width: int = 32,
        depth: int = 4,
        dropout: float = 0.5,
    ):
        super().__init__()
        if fusion not in ("late", "early"):
            raise LitVideoError(f"fusion must be 'late' or 'early', got '{fusion}'")
        self.fusion = fusion
        self.early_frames = early_frames
        self.encoder = build_frame_encoder(backbone, pretrained=pretrained, width=width, depth=depth)
        self.early_conv: nn.Conv3d | None = None
        if fusion == "early":
            self.early_conv = _inflate(self.encoder.conv1, early_frames, copy_weights=pretrained)
            self.encoder.conv1 = None  # replaced by early_conv; keeping it would leave unused parameters
        self.num_features = self.encoder.out_dim
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, D)."""
        if self.early_conv is None:
            b = x.shape[0]
            frames = rearrange(x, "b c t h w -> (b t) c h w")
            feats = self.encoder(frames)  # (B*T, D)
            return rearrange(feats, "(b t) d -> b t d", b=b).mean(dim=1)  # (B, D)
        x = pad_frames(x, self.early_frames)  # clips shorter than the fused window repeat their last frame
        x = self.early_conv(x)  # (B, C1, T - early_frames + 1, H', W')
        x = x.mean(dim=2)  # (B, C1, H', W'): fusion is over; the rest of the network is 2D
        return self.encoder.forward_after_conv1(x).mean(dim=(2, 3))  # (B, D)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, num_classes)."""
        return self.head(self.head_drop(feats))


def _inflate(conv: nn.Conv2d, frames: int, copy_weights: bool) -> nn.Conv3d:
    """A Conv3d with `conv`'s channels, kernel, stride and padding in space, spanning `frames` in time."""
    conv3d = nn.Conv3d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=(frames, *conv.kernel_size),
        stride=(1, *conv.stride),
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


@register_model("frame_late", tiny=_TINY)
def frame_late(
    num_classes: int,
    backbone: Literal["resnet18", "small"] = "resnet18",
    pretrained: bool = False,
    width: int = 32,
    depth: int = 4,
    dropout: float = 0.5,
) -> FrameBaseline:
    """Late fusion: per-frame 2D CNN features averaged over time. Args as `FrameBaseline`."""
    return FrameBaseline(
        num_classes, fusion="late", backbone=backbone, pretrained=pretrained, width=width, depth=depth, dropout=dropout
    )


@register_model("frame_early", tiny=_TINY)
def frame_early(
    num_classes: int,
    backbone: Literal["resnet18", "small"] = "resnet18",
    pretrained: bool = False,
    early_frames: int = 4,
    width: int = 32,
    depth: int = 4,
    dropout: float = 0.5,
) -> FrameBaseline:
    """Early fusion: the first convolution spans `early_frames` frames. Args as `FrameBaseline`."""
    return FrameBaseline(
        num_classes,
        fusion="early",
        backbone=backbone,
        pretrained=pretrained,
        early_frames=early_frames,
        width=width,
        depth=depth,
        dropout=dropout,
    )
