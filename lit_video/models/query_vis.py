"""Query-based video instance segmentation: a per-frame CNN backbone, an FPN pixel decoder, and a
Mask2Former-style transformer decoder of N instance queries with class and mask heads.

Two modes share every weight:
- offline (VisTR / IFC / Mask2Former-VIS): the queries attend to the memory of ALL frames of the clip
  (a sine encoding of the frame index tells them apart); each query is one instance over the clip, one
  class and a mask tube.
- online (MinVIS): the same decoder runs on each frame alone; each frame's queries are matched to the
  previous frame's by embedding similarity at inference, and a track's class scores are averaged over its
  frames.

A dense class head on the pixel decoder's stride-4 features (C+1 logits per cell) is trained on every
pixel (the task's semantic loss) and, with `query_init: selected`, seeds the queries: Mask DINO's query
selection from the best foreground peaks instead of Mask2Former's learned queries.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.registry import register_model
from lit_video.models.vis_base import VIS_MODES, VISModel, check_video, crop_masks
from lit_video.models.vis_decoders import PixelDecoder, QueryDecoder, peak_cells, position_encoding
from lit_video.models.vos_base import ENCODER_STRIDES, FeatureEncoder, pad_to_multiple

QUERY_INITS = ("learned", "selected")
MASK_STRIDES = (4, 2)


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
        query_init: "learned" (Mask2Former: N learned queries) or "selected" (Mask DINO's query selection:
            each group's N initial queries are the mask features, and their positions, of the N best
            local maxima of the dense foreground score, so every query starts on an object).
        memory_strides: the pixel decoder levels the queries attend to, one per decoder layer in turn,
            coarsest first (some of 16, 8, 4). Mask2Former attends to strides 32/16/8 of 480p frames;
            on ~100-pixel frames finer levels (e.g. (8, 4)) keep more cells per object, at the cost of
            attention over 4x / 16x the tokens.
        mask_stride: 4 (Mask2Former: masks on the pixel decoder's stride-4 level) or 2: the final layer's
            masks at stride 2, its stride-4 masks upsampled plus each query's reading of two small
            convolutions on the frame at stride 2, so that a mask's boundary can fall between stride-4 cells
            (on ~100-pixel frames a stride-4 cell is a large part of a small object's outline). The earlier
            layers' masks (masked attention, deep supervision) stay at stride 4.
        detail_channels: mask_stride 2: channels of those convolutions.
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
        query_init: str = "learned",
        mask_stride: int = 4,
        detail_channels: int = 16,
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
        if query_init not in QUERY_INITS:
            raise LitVideoError(f"query_vis: unknown query_init '{query_init}'; known: {', '.join(QUERY_INITS)}")
        if mask_stride not in MASK_STRIDES or detail_channels < 1:
            raise LitVideoError(f"query_vis: mask_stride must be one of {MASK_STRIDES} and detail_channels >= 1, "
                                f"got {mask_stride} and {detail_channels}")
        memory_strides = tuple(memory_strides)
        if not memory_strides or any(s not in ENCODER_STRIDES for s in memory_strides):
            raise LitVideoError(f"query_vis: memory_strides must be some of {ENCODER_STRIDES}, got "
                                f"{memory_strides}")
        # every level must be attended by some layer, or its embedding would never train (DDP complains)
        self.memory_levels = [ENCODER_STRIDES[::-1].index(s) for s in memory_strides[:num_layers]]
        self.num_classes = num_classes
        self.mode = mode
        self.num_queries = num_queries
        self.query_init = query_init
        self.mask_stride = mask_stride
        self.encoder = FeatureEncoder(3, backbone, width, blocks, pretrained)
        self.pixel_decoder = PixelDecoder(self.encoder.channels, hidden_dim)
        self.frame_detail = None
        if mask_stride == 2:  # frame -> (N,D,H/2,W/2): colour edges at stride 2 for the final masks
            self.frame_detail = nn.Sequential(
                nn.Conv2d(3, detail_channels, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(detail_channels, detail_channels, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(detail_channels, hidden_dim, 1),
            )
        # dense class logits (C+1, the last background) of every stride-4 cell: the semantic loss trains the
        # pixel decoder with a signal on every pixel, and query selection ranks cells by them
        self.semantic_head = nn.Conv2d(hidden_dim, num_classes + 1, 1)
        if query_init == "selected":
            self.selected_content = nn.Sequential(nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, hidden_dim))
            self.selected_position = nn.Linear(hidden_dim, hidden_dim)
        self.decoder = QueryDecoder(num_classes, hidden_dim, num_queries, num_layers, num_heads, ffn_dim,
                                    num_levels=len(self.memory_levels),
                                    masked_attention=masked_attention, learned_queries=query_init == "learned")

    def forward(self, video: torch.Tensor) -> dict:
        """video (B,3,T,H,W) ImageNet-normalized -> {"logits": (B,Q,C+1) offline | (B,T,Q,C+1) online,
        "masks": (B,Q,T,ceil(H/s),ceil(W/s)) mask logits at s = mask_stride, "embeddings": (B,Q,D) offline |
        (B,T,Q,D) online,
        "semantic": (B,T,C+1,ceil(H/4),ceil(W/4)) dense class logits (last = background),
        "aux": [{"logits", "masks" at stride 4}] of the initial queries and every decoder layer but the last}."""
        check_video(video)
        batch, _, frames, height, width = video.shape
        x = pad_to_multiple(video.transpose(1, 2).flatten(0, 1), 16)  # (B*T,3,Hp,Wp): the encoder's stride
        # (B*T,D,h4,w4) and the FPN levels [(B*T,D,h,w)] at strides 16, 8, 4
        mask_features, levels = self.pixel_decoder(self.encoder(x))
        semantic = self.semantic_head(mask_features)  # (B*T,C+1,h4,w4)
        memory = [levels[k] for k in self.memory_levels]
        groups, group_frames = (batch, frames) if self.mode == "offline" else (batch * frames, 1)
        grouped_features = mask_features.view(groups, group_frames, *mask_features.shape[1:])  # (N,F,D,h4,w4)
        detail = detail_projection = None
        if self.frame_detail is not None:
            # the features before their final 1x1 projection to D channels, which the decoder applies to the
            # queries' mask embeddings instead (far fewer than the stride-2 cells)
            detail, detail_projection = self.frame_detail[:-1](x), self.frame_detail[-1]  # (B*T,Cd,Hp/2,Wp/2)
            detail = detail.view(groups, group_frames, *detail.shape[1:])  # (N,F,Cd,h2,w2)
        initial = None
        if self.query_init == "selected":
            initial = self._select_queries(grouped_features, semantic.view(groups, group_frames, *semantic.shape[1:]))
        predictions, embeddings = self.decoder(
            [m.view(groups, group_frames, *m.shape[1:]) for m in memory], grouped_features,
            temporal=self.mode == "offline", initial=initial, detail=detail, detail_projection=detail_projection,
        )  # each {(N,Q,C+1), (N,Q,F,h4,w4)} (the last (N,Q,F,hs,ws)), (N,Q,D)
        outputs = [self._unflatten(p, batch, frames, height, width, x.shape[-2]) for p in predictions]
        if self.mode == "online":
            embeddings = embeddings.view(batch, frames, *embeddings.shape[1:])  # (B,T,Q,D)
        semantic = crop_masks(semantic.view(batch, frames, *semantic.shape[1:]), height, width)  # (B,T,C+1,h,w)
        return {**outputs[-1], "embeddings": embeddings, "semantic": semantic, "aux": outputs[:-1]}

    def _select_queries(self, features: torch.Tensor, semantic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query selection: features (N,F,D,h,w), dense logits (N,F,C+1,h,w) -> initial queries and query
        positions (N,Q,D) at the Q cells of each group with the highest foreground probability among the
        3x3 local maxima (one peak per object rather than Q cells of the largest one; when there are
        fewer peaks, the best other cells follow). Offline groups rank the cells of all their frames."""
        groups, frames, dim, height, width = features.shape
        cells = frames * height * width
        if cells < self.num_queries:
            raise LitVideoError(f"query_vis: query_init 'selected' needs at least num_queries "
                                f"({self.num_queries}) stride-4 cells per group, the input has {cells}")
        with torch.no_grad():
            picked = peak_cells(1 - semantic.float().softmax(2)[:, :, -1], self.num_queries)  # (N,Q) into F*h*w
        tokens = features.permute(0, 1, 3, 4, 2).reshape(groups, cells, dim)  # (N,F*h*w,D)
        content = tokens.gather(1, picked[..., None].expand(-1, -1, dim))  # (N,Q,D)
        grid = position_encoding(frames, height, width, dim, self.mode == "offline", features.device)  # (F*h*w,D)
        position = grid[picked].to(features.dtype)  # (N,Q,D)
        return self.selected_content(content), self.selected_position(position)

    def _unflatten(self, prediction: dict, batch: int, frames: int, height: int, width: int,
                   padded_height: int) -> dict:
        """Decoder groups -> per-clip layouts: online (B*T,Q,C+1), (B*T,Q,1,h,w) -> (B,T,Q,C+1),
        (B,Q,T,h,w); masks cropped to the unpadded frame (at their own stride: 4 or, last, the mask stride)."""
        logits, masks = prediction["logits"], prediction["masks"]
        if self.mode == "online":
            logits = logits.view(batch, frames, *logits.shape[1:])  # (B,T,Q,C+1)
            masks = masks.view(batch, frames, *masks.shape[1:]).squeeze(3).transpose(1, 2)  # (B,Q,T,h,w)
        stride = padded_height // masks.shape[-2]
        return {"logits": logits, "masks": crop_masks(masks, height, width, stride)}
