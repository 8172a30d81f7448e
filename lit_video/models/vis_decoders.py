"""The network parts of the query-based VIS models: sine position encodings, an FPN pixel decoder, a
Mask2Former-style masked-attention transformer decoder with class and mask heads, and the peak finding
that query selection starts from."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.layers import Mlp


def sine_encoding(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Transformer sine/cosine encoding of positions (N,) -> (N, dim), dim even.

    Written here because torch has no built-in one; positions are raw indices (not normalized to the
    clip), so a frame or cell keeps its meaning at any clip length or resolution a sweep asks for.
    """
    freqs = temperature ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    angles = positions.float()[:, None] * freqs[None]  # (N, dim/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # (N, dim), sin/cos interleaved


def position_encoding(frames: int, height: int, width: int, dim: int, temporal: bool,
                      device: torch.device | None = None) -> torch.Tensor:
    """Encoding of a (frames, height, width) grid -> (frames*height*width, dim): y and x each take half the
    channels; with `temporal`, a sine of the frame index over all channels is added (offline models tell
    frames apart this way; online models see one frame at a time and leave it out)."""
    if dim % 4:
        raise LitVideoError(f"VIS hidden_dim must be a multiple of 4 (sine encodings of y and x), got {dim}")
    y = sine_encoding(torch.arange(height, device=device), dim // 2)  # (h, D/2)
    x = sine_encoding(torch.arange(width, device=device), dim // 2)  # (w, D/2)
    spatial = torch.cat([y[:, None].expand(-1, width, -1), x[None].expand(height, -1, -1)], dim=-1)  # (h,w,D)
    grid = spatial[None].expand(frames, -1, -1, -1)  # (T,h,w,D)
    if temporal:
        grid = grid + sine_encoding(torch.arange(frames, device=device), dim)[:, None, None]
    return grid.reshape(-1, dim)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class PixelDecoder(nn.Module):
    """A small FPN over the encoder's strides 4/8/16: per-pixel mask features at stride 4 and the
    multi-scale memory (FPN levels at strides 16, 8 and 4) that the queries attend to.

    Mask2Former puts deformable-attention layers here; at our sizes a top-down FPN (as in its "FPN"
    ablation and MaskFormer) is enough and needs no custom kernels.

    Args:
        in_channels: (c4, c8, c16) channels of the encoder features.
        dim: channels of every output (the transformer's hidden size).
    """

    def __init__(self, in_channels: tuple[int, ...], dim: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_channels)  # finest first
        self.output = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), _norm(dim), nn.ReLU(inplace=True))
            for _ in in_channels
        )
        self.mask_features = nn.Conv2d(dim, dim, 1)

    def forward(self, features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """features finest first (f4 (N,c4,4h,4w), f8 (N,c8,2h,2w), f16 (N,c16,h,w))
        -> mask features (N,D,4h,4w), levels [p16 (N,D,h,w), p8 (N,D,2h,2w), p4 (N,D,4h,4w)] coarsest
        first."""
        outputs = []
        x = None
        for lateral, output, feature in zip(self.lateral[::-1], self.output[::-1], features[::-1]):
            y = lateral(feature)  # (N,D,...)
            if x is not None:
                y = y + F.interpolate(x, size=y.shape[-2:], mode="nearest")
            x = output(y)
            outputs.append(x)  # coarse to fine
        return self.mask_features(outputs[-1]), outputs


class QueryDecoderLayer(nn.Module):
    """Mask2Former's decoder layer: masked cross-attention to the memory, self-attention among the
    queries, feed-forward; post-norm.

    Hand-rolled on `nn.MultiheadAttention` because `nn.TransformerDecoderLayer` adds no position
    encodings to the attention keys/queries (only to its inputs, hence also to the values) and runs
    self-attention before cross-attention; Mask2Former needs both, and restricting each query's
    cross-attention to its previous mask estimate is what makes it converge in few steps.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.ffn = Mlp(dim, ffn_dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """queries (N,Q,D), query_pos (1,Q,D), memory (N,S,D), memory_pos (S,D), attn_mask (N*heads,Q,S)
        True = not attended, or None -> (N,Q,D)."""
        attended, _ = self.cross_attn(queries + query_pos, memory + memory_pos, memory, attn_mask=attn_mask,
                                      need_weights=False)
        queries = self.norm1(queries + attended)
        q = queries + query_pos
        attended, _ = self.self_attn(q, q, queries, need_weights=False)
        queries = self.norm2(queries + attended)
        return self.norm3(queries + self.ffn(queries))


class QueryDecoder(nn.Module):
    """N learned queries refined by `num_layers` decoder layers over multi-scale memory (levels taken in
    turn, coarsest first), with a class head and a mask head after the initial queries and after every
    layer (the heads are shared by all layers, as in Mask2Former).

    The decoder sees "groups" of frames: the queries of a group attend to the memory of all its frames and
    predict one class and a mask tube over them. Offline models pass one group per clip; online models one
    group per frame.

    Args:
        num_classes: C real classes (the class head has C+1 outputs, the last "no object").
        dim: hidden size.
        num_queries: N queries.
        num_layers: decoder layers.
        num_heads: attention heads.
        ffn_dim: hidden size of the feed-forward blocks.
        num_levels: memory levels, taken in turn by the layers (their embeddings tell them apart).
        masked_attention: restrict each query's cross-attention to where its previous mask is > 0.5.
        learned_queries: learn the initial queries; False = every call passes its own (`initial`).
    """

    def __init__(self, num_classes: int, dim: int, num_queries: int, num_layers: int, num_heads: int,
                 ffn_dim: int, num_levels: int, masked_attention: bool = True, learned_queries: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.masked_attention = masked_attention
        if learned_queries:
            self.query_feat = nn.Embedding(num_queries, dim)  # the initial content of the queries
            self.query_pos = nn.Embedding(num_queries, dim)  # their position (identity) in every attention
        self.level_embed = nn.Embedding(num_levels, dim)
        self.layers = nn.ModuleList(QueryDecoderLayer(dim, num_heads, ffn_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.class_head = nn.Linear(dim, num_classes + 1)
        self.mask_head = Mlp(dim, dim)

    def forward(self, memory: list[torch.Tensor], mask_features: torch.Tensor, temporal: bool,
                initial: tuple[torch.Tensor, torch.Tensor] | None = None, detail: torch.Tensor | None = None,
                detail_projection: nn.Conv2d | None = None) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
        """memory: levels coarsest first, each (N,F,D,h_l,w_l) for N groups of F frames; mask_features
        (N,F,D,h4,w4); temporal: add the frame-index encoding to the memory positions; initial: the
        queries' initial content and positions, each (N,Q,D), in place of the learned ones (query
        selection); detail: (N,F,Cd,h2,w2) stride-2 features that refine the final masks, read through
        detail_projection, a 1x1 convolution Cd -> D (None: Cd = D, read as they are).

        Returns:
            predictions after the initial queries and after each layer, each {"logits": (N,Q,C+1),
            "masks": (N,Q,F,h4,w4)}, the last one's masks (N,Q,F,h2,w2) with detail; and the final query
            embeddings (N,Q,D).
        """
        groups, frames, dim = mask_features.shape[:3]
        # channel-major once, (N,D,F,h,w): every layer's mask read is then a plain batched matrix product
        # (a read of the (N,F,D,h,w) layout copies the features into this one, forward and backward, each time)
        mask_features = mask_features.transpose(1, 2).contiguous()
        tokens, positions, sizes = [], [], []
        for level, features in enumerate(memory):
            h, w = features.shape[-2:]
            tokens.append(features.permute(0, 1, 3, 4, 2).reshape(groups, frames * h * w, dim))  # (N,S_l,D)
            encoding = position_encoding(frames, h, w, dim, temporal, features.device).to(features.dtype)
            positions.append(encoding + self.level_embed.weight[level])  # (S_l,D)
            sizes.append((h, w))
        # repeat / clone rather than views: a view of a parameter made under no_grad requires grad but has no
        # grad_fn, which Lightning's model summary (PyTorch's module tracker) rejects
        if initial is None:
            queries = self.query_feat.weight.unsqueeze(0).repeat(groups, 1, 1)  # (N,Q,D)
            query_pos = self.query_pos.weight.unsqueeze(0).clone()  # (1,Q,D)
        else:
            queries, query_pos = initial  # (N,Q,D) each
        embeddings, mask_embeddings, prediction = self._predict(queries, mask_features)
        predictions = [prediction]
        for k, layer in enumerate(self.layers):
            level = k % len(tokens)
            attn_mask = None
            if self.masked_attention:
                attn_mask = self._attention_mask(prediction["masks"], sizes[level])
            queries = layer(queries, query_pos, tokens[level], positions[level], attn_mask)
            embeddings, mask_embeddings, prediction = self._predict(queries, mask_features)
            predictions.append(prediction)
        if detail is not None:
            # <e, up(features) + detail> = up(<e, features>) + <e, detail>: the stride-4 mask upsampled plus
            # each query's own reading of the frame's detail, for the final layer only (the earlier layers'
            # stride-4 masks steer the masked attention and take the deep supervision at a quarter of the cost)
            coarse = prediction["masks"]  # (N,Q,F,h4,w4)
            upsampled = F.interpolate(coarse.flatten(1, 2), size=detail.shape[-2:], mode="bilinear",
                                      align_corners=False).view(*coarse.shape[:3], *detail.shape[-2:])
            # <e, W d + b> = <W^T e, d> + <e, b>: the projection applied to the Q mask embeddings rather than
            # to the D channels of every stride-2 cell of the frames
            readers = mask_embeddings  # (N,Q,D)
            if detail_projection is not None:
                readers = mask_embeddings @ detail_projection.weight.flatten(1)  # (N,Q,Cd)
            reading = read_masks(readers, detail.transpose(1, 2).contiguous())  # (N,Q,F,h2,w2)
            if detail_projection is not None and detail_projection.bias is not None:
                reading = reading + (mask_embeddings @ detail_projection.bias)[..., None, None, None]
            fine = upsampled + reading
            predictions[-1] = {**prediction, "masks": fine}
        return predictions, embeddings

    def _predict(self, queries: torch.Tensor, mask_features: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """queries (N,Q,D), mask_features (N,D,F,h,w) channel-major -> embeddings (N,Q,D), mask embeddings
        (N,Q,D), {logits, masks}."""
        x = self.norm(queries)  # (N,Q,D)
        mask_embeddings = self.mask_head(x)  # (N,Q,D)
        masks = read_masks(mask_embeddings, mask_features)  # (N,Q,F,h,w)
        return x, mask_embeddings, {"logits": self.class_head(x), "masks": masks}

    def _attention_mask(self, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Mask logits (N,Q,F,h4,w4) -> (N*heads,Q,F*h*w) bool, True where a query may NOT attend."""
        groups, queries, frames = masks.shape[:3]
        resized = F.interpolate(masks.detach().flatten(0, 1), size=size, mode="bilinear", align_corners=False)
        blocked = (resized.sigmoid() < 0.5).reshape(groups, queries, -1)  # (N,Q,S)
        # a query whose mask is empty everywhere would attend to nothing (NaN): let it see everything
        blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
        return blocked.repeat_interleave(self.num_heads, dim=0)  # (N*heads,Q,S), batch-major as MHA wants


def read_masks(embeddings: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Mask logits of each query, <embedding, feature> at every cell: embeddings (N,Q,D), channel-major
    features (N,D,F,h,w) -> (N,Q,F,h,w), one batched matrix product."""
    return torch.bmm(embeddings, features.flatten(2)).view(*embeddings.shape[:2], *features.shape[2:])


def peak_cells(scores: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` best cells of each group: scores (N,F,h,w) -> int64 (N,count) indices into F*h*w.

    3x3 local maxima come first, best first, then the other cells: one cell per object rather than
    `count` cells of the largest one (CenterNet's max-pool peak finding, standing in for NMS)."""
    peaks = F.max_pool2d(scores.flatten(0, 1), 3, stride=1, padding=1).view_as(scores)
    ranked = torch.where(scores >= peaks, scores, scores - (scores.max() - scores.min() + 1))  # (N,F,h,w)
    return ranked.flatten(1).topk(count, dim=1).indices
