"""Query-based video instance segmentation: a per-frame CNN backbone, an FPN pixel decoder, and a
Mask2Former-style transformer decoder of N instance queries with class and mask heads.

Two modes share every weight:
- offline (VisTR / IFC / Mask2Former-VIS): the queries attend to the memory of ALL frames of the clip
  (a sine encoding of the frame index tells them apart); each query is one instance over the clip, one
  class and a mask tube.
- online (MinVIS): the same decoder runs on each frame alone; each frame's queries are matched to the
  previous frame's by embedding similarity at inference, and a track's class scores are averaged over its
  frames.
"""

from __future__ import annotations

import torch

from lit_video.errors import LitVideoError
from lit_video.models.registry import register_model
from lit_video.models.vis_base import (
    VIS_MODES,
    PixelDecoder,
    QueryDecoder,
    VISModel,
    check_video,
    crop_masks,
)
from lit_video.models.vos_base import ENCODER_STRIDES, FeatureEncoder, pad_to_multiple


@register_model(
    "query_vis",
    task="vis",
    tiny=dict(backbone="small", width=8, blocks=1, hidden_dim=32, num_queries=8, num_layers=3, num_heads=4,
              ffn_dim=64),
)
class QueryVIS(VISModel):
    """Mask2Former-style VIS model, offline or online.

    Args:
        num_classes: C instance categories (the class head has C+1 outputs, the last "no object").
        mode: "offline" (queries span the clip) or "online" (queries per frame, associated at inference).
        backbone: "small" (GroupNorm ResNet of `width` / `blocks`) or "resnet18" (torchvision's layers).
        width: channels at stride 4 of the small backbone.
        blocks: residual blocks per stage of the small backbone.
        pretrained: resnet18 only: ImageNet weights from the torch hub cache (never downloads).
        hidden_dim: channels of the pixel decoder, the queries and the mask embeddings (multiple of 4).
        num_queries: N instance queries (the most instances a clip can have).
        num_layers: transformer decoder layers.
        num_heads: attention heads (divides hidden_dim).
        ffn_dim: hidden size of the decoder's feed-forward blocks.
        masked_attention: Mask2Former's masked cross-attention (each query sees only its current mask).
        memory_strides: the pixel decoder levels the queries attend to, one per decoder layer in turn,
            coarsest first (some of 16, 8, 4). Mask2Former attends to strides 32/16/8 of 480p frames;
            on ~100-pixel frames finer levels (e.g. (8, 4)) keep more cells per object, at the cost of
            attention over 4x / 16x the tokens.
    """

    def __init__(
        self,
        num_classes: int,
        mode: str = "offline",
        backbone: str = "resnet18",
        width: int = 64,
        blocks: int = 2,
        pretrained: bool = False,
        hidden_dim: int = 256,
        num_queries: int = 100,
        num_layers: int = 6,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        masked_attention: bool = True,
        memory_strides: tuple[int, ...] = (16, 8),
    ):
        super().__init__()
        if mode not in VIS_MODES:
            raise LitVideoError(f"query_vis: unknown mode '{mode}'; known modes: {', '.join(VIS_MODES)}")
        if num_classes < 1 or num_queries < 1 or num_layers < 1:
            raise LitVideoError(f"query_vis: num_classes, num_queries and num_layers must be >= 1, got "
                                f"{num_classes}, {num_queries}, {num_layers}")
        if hidden_dim % num_heads or hidden_dim % 4:
            raise LitVideoError(f"query_vis: hidden_dim ({hidden_dim}) must be a multiple of 4 and of "
                                f"num_heads ({num_heads})")
        memory_strides = tuple(memory_strides)
        if not memory_strides or any(s not in ENCODER_STRIDES for s in memory_strides):
            raise LitVideoError(f"query_vis: memory_strides must be some of {ENCODER_STRIDES}, got "
                                f"{memory_strides}")
        # every level must be attended by some layer, or its embedding would never train (DDP complains)
        self.memory_levels = [ENCODER_STRIDES[::-1].index(s) for s in memory_strides[:num_layers]]
        self.num_classes = num_classes
        self.mode = mode
        self.num_queries = num_queries
        self.encoder = FeatureEncoder(3, backbone, width, blocks, pretrained)
        self.pixel_decoder = PixelDecoder(self.encoder.channels, hidden_dim)
        self.decoder = QueryDecoder(num_classes, hidden_dim, num_queries, num_layers, num_heads, ffn_dim,
                                    num_levels=len(self.memory_levels),
                                    masked_attention=masked_attention)

    def forward(self, video: torch.Tensor) -> dict:
        """video (B,3,T,H,W) ImageNet-normalized -> {"logits": (B,Q,C+1) offline | (B,T,Q,C+1) online,
        "masks": (B,Q,T,ceil(H/4),ceil(W/4)) mask logits, "embeddings": (B,Q,D) offline | (B,T,Q,D) online,
        "aux": [{"logits", "masks"}] of the initial queries and every decoder layer but the last}."""
        check_video(video)
        batch, _, frames, height, width = video.shape
        x = pad_to_multiple(video.transpose(1, 2).flatten(0, 1), 16)  # (B*T,3,Hp,Wp): the encoder's stride
        # (B*T,D,h4,w4) and the FPN levels [(B*T,D,h,w)] at strides 16, 8, 4
        mask_features, levels = self.pixel_decoder(self.encoder(x))
        memory = [levels[k] for k in self.memory_levels]
        groups, group_frames = (batch, frames) if self.mode == "offline" else (batch * frames, 1)
        predictions, embeddings = self.decoder(
            [m.view(groups, group_frames, *m.shape[1:]) for m in memory],
            mask_features.view(groups, group_frames, *mask_features.shape[1:]),
            temporal=self.mode == "offline",
        )  # each {(N,Q,C+1), (N,Q,F,h4,w4)}, (N,Q,D)
        outputs = [self._unflatten(p, batch, frames, height, width) for p in predictions]
        if self.mode == "online":
            embeddings = embeddings.view(batch, frames, *embeddings.shape[1:])  # (B,T,Q,D)
        return {**outputs[-1], "embeddings": embeddings, "aux": outputs[:-1]}

    def _unflatten(self, prediction: dict, batch: int, frames: int, height: int, width: int) -> dict:
        """Decoder groups -> per-clip layouts: online (B*T,Q,C+1), (B*T,Q,1,h,w) -> (B,T,Q,C+1),
        (B,Q,T,h,w); masks cropped to the unpadded frame."""
        logits, masks = prediction["logits"], prediction["masks"]
        if self.mode == "online":
            logits = logits.view(batch, frames, *logits.shape[1:])  # (B,T,Q,C+1)
            masks = masks.view(batch, frames, *masks.shape[1:]).squeeze(3).transpose(1, 2)  # (B,Q,T,h,w)
        return {"logits": logits, "masks": crop_masks(masks, height, width)}
