"""Two-stream network (Simonyan & Zisserman, NeurIPS 2014), with TSN's cross-modality initialisation.

A spatial stream, a 2D CNN on each RGB frame of the clip with its class scores averaged over the clip, and
a temporal stream, a 2D CNN whose first layer takes the 2L stacked optical-flow channels (x, y of each of
the clip's L frames, in time order), each give class probabilities; late fusion averages the two streams'
softmax scores. The model returns the log of the fused probabilities, so the classification loss (cross
entropy of log-probabilities is their negative log-likelihood) and accuracy work unchanged.

With `fusion="learned"` a linear layer over both streams' log-probabilities (2K -> K, the paper's SVM on
stacked scores, trained end to end) gives the fused scores; it starts as their average, i.e. the geometric
mean of the two streams' probabilities, and the output is again a log-probability.

The modality the DataModule delivers decides the streams: "rgb+flow" both, "rgb" the spatial stream alone
and "flow" the temporal stream alone (each then trains as a classifier on its own).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.frame_encoders import (
    FrameEncoder,
    build_frame_encoder,
    check_channels,
    modality_channels,
    scale_flow,
)
from lit_video.models.registry import register_model

FUSIONS = ("average", "learned")
NAME = "two_stream"


@register_model(NAME, tiny=dict(backbone="small", width=16, depth=3, modality="rgb"))
class TwoStream(nn.Module):
    """Spatial (RGB) and temporal (stacked flow) 2D CNNs, late-fused.

    Args:
        num_classes: number of classes.
        modality: "rgb+flow" (both streams), "rgb" (spatial only) or "flow" (temporal only); the task passes
            the DataModule's.
        clip_len: L, the flow frames the temporal stream stacks (its first layer takes 2L channels); the
            task passes the DataModule's clip length. A shorter clip is padded with zero flow (no motion),
            a longer one gives its middle L frames to the temporal stream.
        backbone: "resnet18" (torchvision) or "small" (a CPU-sized conv stack), for both streams.
        pretrained: ImageNet weights for resnet18 from the torch hub cache (never downloads); the temporal
            stream's first layer gets the RGB filters averaged over colour, repeated for its 2L channels.
        fusion: "average" of the streams' softmax scores, or "learned" (a linear layer over both streams'
            log-probabilities, initialised to their average); only used with both streams.
        width: channels of the first layer of the "small" backbone.
        depth: layers of the "small" backbone.
        dropout: dropout before each stream's classifier (the paper uses 0.9 on the temporal stream).
    """

    def __init__(
        self,
        num_classes: int,
        modality: str = "rgb+flow",
        clip_len: int = 10,
        backbone: Literal["resnet18", "small"] = "resnet18",
        pretrained: bool = False,
        fusion: Literal["average", "learned"] = "average",
        width: int = 32,
        depth: int = 4,
        dropout: float = 0.5,
    ):
        super().__init__()
        modality_channels(modality, f"model '{NAME}'")
        if fusion not in FUSIONS:
            raise LitVideoError(f"model '{NAME}': fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if isinstance(clip_len, bool) or not isinstance(clip_len, int) or clip_len < 1:
            raise LitVideoError(f"model '{NAME}': clip_len must be an integer >= 1, got {clip_len!r}")
        self.modality, self.clip_len, self.fusion = modality, clip_len, fusion
        self.spatial: FrameEncoder | None = None
        self.temporal: FrameEncoder | None = None
        self.spatial_head: nn.Linear | None = None
        self.temporal_head: nn.Linear | None = None
        self.fuse: nn.Linear | None = None
        if "rgb" in modality:
            self.spatial = build_frame_encoder(backbone, pretrained=pretrained, width=width, depth=depth)
            self.spatial_head = nn.Linear(self.spatial.out_dim, num_classes)
        if "flow" in modality:
            self.temporal = build_frame_encoder(backbone, pretrained=pretrained, width=width, depth=depth,
                                                in_channels=2 * clip_len, rgb_channels=0)
            self.temporal_head = nn.Linear(self.temporal.out_dim, num_classes)
        if self.spatial is not None and self.temporal is not None and fusion == "learned":
            self.fuse = nn.Linear(2 * num_classes, num_classes)
            with torch.no_grad():  # start as the average of the two streams' log-probabilities
                eye = torch.eye(num_classes) / 2
                self.fuse.weight.copy_(torch.cat([eye, eye], dim=1))
                self.fuse.bias.zero_()
        self.head_drop = nn.Dropout(dropout)
        self.num_features = sum(s.out_dim for s in (self.spatial, self.temporal) if s is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> log-probabilities (B, num_classes)."""
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, D): the spatial stream's features averaged over frames, then the temporal
        stream's features of the stacked flow (whichever the modality has)."""
        check_channels(x, self.modality, f"model '{NAME}'")
        x = scale_flow(x, self.modality)
        feats = []
        if self.spatial is not None:
            frames = rearrange(x[:, :3], "b c t h w -> (b t) c h w")
            # a linear head of the averaged features is the average of the per-frame class scores
            feats.append(rearrange(self.spatial(frames), "(b t) d -> b t d", b=x.shape[0]).mean(dim=1))
        if self.temporal is not None:
            feats.append(self.temporal(self.stack_flow(x[:, -2:])))
        return torch.cat(feats, dim=1)

    def stack_flow(self, flow: torch.Tensor) -> torch.Tensor:
        """Flow (B, 2, T, H, W) -> the temporal stream's input (B, 2L, H, W): x, y of frame 0, x, y of frame 1,
        ..., padded with zero flow or cut to its middle L frames."""
        t = flow.shape[2]
        if t < self.clip_len:
            flow = F.pad(flow, (0, 0, 0, 0, 0, self.clip_len - t))  # zero flow after the clip: no motion
        elif t > self.clip_len:
            start = (t - self.clip_len) // 2
            flow = flow[:, :, start:start + self.clip_len]
        return rearrange(flow, "b c t h w -> b (t c) h w")

    def stream_log_probs(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of `forward_features` -> each stream's log-probabilities (B, K), by stream name."""
        out, start = {}, 0
        for name, encoder, head in (("spatial", self.spatial, self.spatial_head),
                                    ("temporal", self.temporal, self.temporal_head)):
            if encoder is None:
                continue
            part = feats[:, start:start + encoder.out_dim]
            start += encoder.out_dim
            out[name] = F.log_softmax(head(self.head_drop(part)), dim=1)
        return out

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) -> log of the fused class probabilities (B, num_classes)."""
        streams = list(self.stream_log_probs(feats).values())
        if len(streams) == 1:
            return streams[0]
        if self.fuse is not None:
            return F.log_softmax(self.fuse(torch.cat(streams, dim=1)), dim=1)
        # log of the mean of the two probabilities, computed stably from the log-probabilities
        return torch.logsumexp(torch.stack(streams), dim=0) - torch.log(torch.tensor(2.0, device=feats.device))
