"""Shared parts of the query-based video instance segmentation (VIS) models (not registered): the model
interface, sine position encodings, an FPN pixel decoder, a masked-attention transformer decoder with class
and mask heads, Hungarian matching of queries to ground-truth instances, the set criterion, and the
frame-to-frame association of query embeddings.

A VIS model maps a clip to N instance queries, each a class distribution and a mask tube:

    out = model(video)                           # video (B,3,T,H,W), ImageNet-normalized
    out["logits"]   # (B,Q,C+1) offline (one class per query and clip) | (B,T,Q,C+1) online (per frame)
    out["masks"]    # (B,Q,T,H/s,W/s) mask logits, both modes, at the model's `mask_stride` s (4 if unset)
    out["aux"]      # the same two keys after every earlier decoder layer (deep supervision; masks at stride 4)
    scores, masks = model.segment_video(video)   # one whole video (1,3,T,H,W) -> (Q,C), (Q,T,H/s,W/s)

Classes are 0..C-1; index C of the logits is "no object".
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.layers import Mlp
from lit_video.models.vos_base import pad_to_multiple

VIS_MODES = ("offline", "online")
ABSENT_LOGIT = -20.0  # the mask logit of a frame where a track is absent: sigmoid ~2e-9, finite in bf16


# ---------------------------------------------------------------------------------------------- model parts
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
                ) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
        """memory: levels coarsest first, each (N,F,D,h_l,w_l) for N groups of F frames; mask_features
        (N,F,D,h4,w4); temporal: add the frame-index encoding to the memory positions; initial: the
        queries' initial content and positions, each (N,Q,D), in place of the learned ones (query
        selection); detail: (N,F,D,h2,w2) stride-2 features that refine the final masks.

        Returns:
            predictions after the initial queries and after each layer, each {"logits": (N,Q,C+1),
            "masks": (N,Q,F,h4,w4)}, the last one's masks (N,Q,F,h2,w2) with detail; and the final query
            embeddings (N,Q,D).
        """
        groups, frames, dim = mask_features.shape[:3]
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
            fine = upsampled + torch.einsum("nqd,nfdhw->nqfhw", mask_embeddings, detail)  # (N,Q,F,h2,w2)
            predictions[-1] = {**prediction, "masks": fine}
        return predictions, embeddings

    def _predict(self, queries: torch.Tensor, mask_features: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """queries (N,Q,D), mask_features (N,F,D,h,w) -> embeddings (N,Q,D), mask embeddings (N,Q,D),
        {logits, masks}."""
        x = self.norm(queries)  # (N,Q,D)
        mask_embeddings = self.mask_head(x)  # (N,Q,D)
        masks = torch.einsum("nqd,nfdhw->nqfhw", mask_embeddings, mask_features)  # (N,Q,F,h,w)
        return x, mask_embeddings, {"logits": self.class_head(x), "masks": masks}

    def _attention_mask(self, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Mask logits (N,Q,F,h4,w4) -> (N*heads,Q,F*h*w) bool, True where a query may NOT attend."""
        groups, queries, frames = masks.shape[:3]
        resized = F.interpolate(masks.detach().flatten(0, 1), size=size, mode="bilinear", align_corners=False)
        blocked = (resized.sigmoid() < 0.5).reshape(groups, queries, -1)  # (N,Q,S)
        # a query whose mask is empty everywhere would attend to nothing (NaN): let it see everything
        blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
        return blocked.repeat_interleave(self.num_heads, dim=0)  # (N*heads,Q,S), batch-major as MHA wants


def peak_cells(scores: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` best cells of each group: scores (N,F,h,w) -> int64 (N,count) indices into F*h*w.

    3x3 local maxima come first, best first, then the other cells: one cell per object rather than
    `count` cells of the largest one (CenterNet's max-pool peak finding, standing in for NMS)."""
    peaks = F.max_pool2d(scores.flatten(0, 1), 3, stride=1, padding=1).view_as(scores)
    ranked = torch.where(scores >= peaks, scores, scores - (scores.max() - scores.min() + 1))  # (N,F,h,w)
    return ranked.flatten(1).topk(count, dim=1).indices


# ---------------------------------------------------------------------------------------------- interface
class VISModel(nn.Module):
    """Base class of the query-based VIS models: `forward` on training clips, `segment_video` on whole
    videos. Subclasses set `num_classes`, `mode` ("offline" | "online") and implement `forward`, whose dict
    also holds "embeddings": (B,Q,D) per clip offline, (B,T,Q,D) per frame online."""

    num_classes: int
    mode: str

    @torch.no_grad()
    def segment_video(self, video: torch.Tensor, window: int | None = None, overlap_weight: float = 0.0,
                      momentum: float = 0.0, absent_threshold: float | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Instance tracks of one whole video.

        Offline, the video runs at once, or in consecutive windows of `window` frames whose queries are
        associated by embedding similarity (`associate`); a track's class distribution is the mean of its
        windows' (weighted by their frames). Online, every frame is decoded on its own (`window` frames
        per forward pass, the same result for any window: it only bounds memory), queries are associated
        frame to frame and a track's distribution is the mean over its frames.

        Args:
            video: (1,3,T,H,W) ImageNet-normalized frames.
            window: frames per forward pass; None = all.
            overlap_weight, momentum: `associate`'s mask overlap term and track embedding momentum.
            absent_threshold: online: a track's mask is empty in the frames where its query's "no object"
                probability exceeds this (the instance has left or is hidden there, and the query that the
                track took in that frame would otherwise paint its stray mask into the tube); None = every
                frame's mask as decoded.

        Returns:
            class probabilities (Q,C) over the real classes (softmax with "no object" dropped) and mask
            logits (Q,T,ceil(H/s),ceil(W/s)) of each track (s: the mask stride).
        """
        if video.ndim != 5 or video.shape[0] != 1:
            raise ValueError(f"segment_video takes one video (1,3,T,H,W), got {tuple(video.shape)}")
        frames = video.shape[2]
        window = frames if window is None else max(int(window), 1)
        pieces = [self(video[:, :, s:s + window]) for s in range(0, frames, window)]
        if self.mode == "online":
            probs = torch.cat([p["logits"][0] for p in pieces]).softmax(-1)  # (T,Q,C+1)
            masks = torch.cat([p["masks"][0] for p in pieces], dim=1).transpose(0, 1)  # (T,Q,h,w)
            order = torch.as_tensor(associate(torch.cat([p["embeddings"][0] for p in pieces]), masks, masks,
                                              overlap_weight, momentum), device=video.device)  # (T,Q)
            probs = probs.gather(1, order[..., None].expand_as(probs))  # (T,Q,C+1), track order
            masks = masks[torch.arange(frames, device=video.device)[:, None], order]  # (T,Q,h,w)
            if absent_threshold is not None:
                absent = probs[..., -1] > absent_threshold  # (T,Q)
                masks = masks.masked_fill(absent[..., None, None], ABSENT_LOGIT)
            return probs.mean(0)[:, :-1], masks.transpose(0, 1)
        probs = torch.stack([p["logits"][0] for p in pieces]).softmax(-1)  # (W,Q,C+1)
        order = torch.as_tensor(associate(torch.stack([p["embeddings"][0] for p in pieces]),
                                          torch.stack([p["masks"][0, :, 0] for p in pieces]),
                                          torch.stack([p["masks"][0, :, -1] for p in pieces]),
                                          overlap_weight, momentum), device=video.device)  # (W,Q)
        weights = torch.tensor([p["masks"].shape[2] for p in pieces], device=video.device, dtype=probs.dtype)
        probs = probs.gather(1, order[..., None].expand_as(probs))  # (W,Q,C+1)
        probs = (probs * weights[:, None, None]).sum(0) / weights.sum()  # (Q,C+1)
        masks = torch.cat([p["masks"][0][o] for p, o in zip(pieces, order, strict=True)], dim=1)  # (Q,T,h,w)
        return probs[:, :-1], masks


def check_video(video: torch.Tensor) -> None:
    """A VIS model's input must be (B,3,T,H,W)."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"VIS models take video (B,3,T,H,W), got {tuple(video.shape)}")


def crop_masks(masks: torch.Tensor, height: int, width: int, stride: int = 4) -> torch.Tensor:
    """(..., h, w) stride-`stride` masks of a padded input -> (..., ceil(H/stride), ceil(W/stride))."""
    return masks[..., : -(-height // stride), : -(-width // stride)]


# ---------------------------------------------------------------------------------------------- association
def associate(embeddings: torch.Tensor, first_masks: torch.Tensor | None = None,
              last_masks: torch.Tensor | None = None, overlap_weight: float = 0.0,
              momentum: float = 0.0) -> np.ndarray:
    """MinVIS association: query q of step t continues the track whose query at step t-1 is most similar.

    Each step's queries are matched one-to-one to the tracks by Hungarian matching (scipy's
    `linear_sum_assignment`) on the cosine similarity of the query embeddings to each track's embedding:
    its previous step's (`momentum` 0, MinVIS) or a running mean (track embedding <- momentum * itself +
    (1 - momentum) * its new query's, renormalized), which rides out a frame where an occlusion blurs the
    query. With `overlap_weight`, the soft IoU of each track's mask in the last frame of step t-1 and each
    query's mask in the first frame of step t is added, weighted: objects move little between adjacent
    frames, and duplicate queries of one object, alike in embedding, differ in where their masks lie.

    Args:
        embeddings: (T,Q,D) query embeddings of T frames (or windows).
        first_masks, last_masks: (T,Q,h,w) mask logits of each step's first and last frame (the same
            tensor online); needed when overlap_weight > 0.
        overlap_weight: weight of the mask IoU term (0 = embeddings only).
        momentum: weight of a track's past in its embedding (0 = the previous step's query alone).

    Returns:
        int64 (T,Q): row t lists, for each track, the index of its query in step t (row 0 = identity), so
        `embeddings[t, order[t]]` is step t in track order.
    """
    # in NumPy: a torch product here would run in bfloat16 under autocast (bf16-mixed evaluation), which
    # scipy cannot take and which blurs the similarities that tell neighbouring queries apart
    normed = F.normalize(embeddings.detach().float(), dim=-1).cpu().numpy()  # (T,Q,D)
    steps, queries = normed.shape[:2]
    use_overlap = overlap_weight > 0
    if use_overlap:
        if first_masks is None or last_masks is None:
            raise ValueError("associate: overlap_weight needs first_masks and last_masks")
        first = first_masks.detach().float().sigmoid().flatten(2).cpu().numpy()  # (T,Q,N)
        last = last_masks.detach().float().sigmoid().flatten(2).cpu().numpy()  # (T,Q,N)
    order = np.empty((steps, queries), dtype=np.int64)
    order[0] = np.arange(queries)
    tracks_embedding = normed[0]  # (Q,D), track order
    for t in range(1, steps):
        similarity = tracks_embedding @ normed[t].T  # (Q tracks, Q queries of step t)
        if use_overlap:
            previous = last[t - 1, order[t - 1]]  # (Q tracks, N)
            inter = previous @ first[t].T  # (Q,Q)
            union = previous.sum(1)[:, None] + first[t].sum(1)[None] - inter
            similarity = similarity + overlap_weight * inter / np.maximum(union, 1e-6)
        tracks, picked = linear_sum_assignment(similarity, maximize=True)
        order[t, tracks] = picked
        tracks_embedding = momentum * tracks_embedding + (1 - momentum) * normed[t, order[t]]
        tracks_embedding = tracks_embedding / np.maximum(np.linalg.norm(tracks_embedding, axis=1, keepdims=True),
                                                         1e-12)
    return order


# ---------------------------------------------------------------------------------------------- matching
def resize_targets(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Ground-truth masks (K,T,H,W) -> soft masks (K,T,*size) in [0, 1] by area averaging.

    The losses are computed at the resolution the model predicts (stride 4 or 2): 16x or 4x cheaper than
    upsampled predictions, and the area average keeps a small object's fractional coverage instead of
    dropping it.
    When the predictions come from an input padded to the stride (bottom/right, as the models pad), the
    ground truth is padded the same way first, so every prediction cell averages exactly its own pixels.
    """
    masks = masks.float()
    height, width = masks.shape[-2:]
    if (height, width) == tuple(size):
        return masks
    stride_h, stride_w = -(-height // size[0]), -(-width // size[1])
    if stride_h == stride_w and -(-height // stride_h) == size[0] and -(-width // stride_w) == size[1]:
        masks = pad_to_multiple(masks, stride_h)
    resized = F.interpolate(masks.flatten(0, 1)[:, None], size=tuple(size), mode="area")  # (K*T,1,h,w)
    return resized.view(*masks.shape[:2], *size)


def point_sample(masks: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear values of masks (N,T,h,w) at points (N,P,2) of (x, y) in [0, 1] -> (N,T,P); the same point
    in every frame (as Mask2Former-VIS samples a clip)."""
    grid = (2 * points - 1)[:, None]  # (N,1,P,2) in grid_sample's [-1, 1]
    return F.grid_sample(masks, grid, mode="bilinear", align_corners=False)[:, :, 0]


def dice_cost(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise dice loss: logits (Q,N), targets (K,N) in [0, 1] -> (Q,K); +1 smoothing (empty vs empty
    = 0)."""
    probs = logits.sigmoid()
    numerator = 2 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None]
    return 1 - (numerator + 1) / (denominator + 1)


def bce_cost(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise mean sigmoid binary cross-entropy: logits (Q,N), targets (K,N) -> (Q,K).

    BCE(x, g) = g * softplus(-x) + (1 - g) * softplus(x), summed over N as two matrix products.
    """
    positive, negative = F.softplus(-logits), F.softplus(logits)  # (Q,N) costs of g=1 and g=0
    return (positive @ targets.T + negative @ (1 - targets).T) / logits.shape[-1]


class HungarianMatcher(nn.Module):
    """One-to-one matching of a clip's queries to its ground-truth instances.

    Cost of query i vs instance j = -cost_class * p_i(class_j) + cost_dice * dice(m_i, g_j)
    + cost_mask * BCE(m_i, g_j), the mask terms over the whole clip (masks flattened over T,h,w; a frame
    where the instance is absent is an empty ground-truth mask there). Sigmoid BCE, not focal: it is
    Mask2Former's choice, and on our small masks the focal loss's down-weighting of easy pixels made
    no difference. Minimized with scipy's `linear_sum_assignment`.

    Args:
        cost_class, cost_dice, cost_mask: weights of the three terms.
        num_points: compare masks at this many random points (the same in every frame of the clip) rather
            than over every cell; None = every cell (affordable at our sizes).
    """

    def __init__(self, cost_class: float = 2.0, cost_dice: float = 5.0, cost_mask: float = 5.0,
                 num_points: int | None = None):
        super().__init__()
        self.cost_class, self.cost_dice, self.cost_mask = cost_class, cost_dice, cost_mask
        self.num_points = num_points

    @torch.no_grad()
    def forward(self, logits: torch.Tensor, masks: torch.Tensor,
                targets: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """logits (B,Q,C+1), masks (B,Q,T,h,w); targets per clip {labels (K,), masks (K,T,H,W)}
        -> per clip (query_idx, gt_idx) int64 tensors of equal length min(Q, K)."""
        batch, queries = logits.shape[:2]
        sizes = [len(t["labels"]) for t in targets]
        empty = torch.empty(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in targets]
        # One cost matrix of every query against every instance of the batch (DETR's trick: a few large
        # matrix products instead of one small set per clip); each clip then reads its own block.
        labels = torch.cat([t["labels"] for t in targets]).long().to(logits.device)  # (K_all,)
        probs = logits.float().flatten(0, 1).softmax(-1)  # (B*Q,C+1)
        pred = masks.float().flatten(0, 1)  # (B*Q,T,h,w)
        gt = torch.cat([resize_targets(t["masks"].to(pred.device), pred.shape[-2:])
                        for t in targets])  # (K_all,T,h,w)
        if self.num_points is not None:
            points = torch.rand(1, self.num_points, 2, device=pred.device)
            pred = point_sample(pred, points.expand(pred.shape[0], -1, -1))  # (B*Q,T,P)
            gt = point_sample(gt, points.expand(gt.shape[0], -1, -1))  # (K_all,T,P)
        pred, gt = pred.flatten(1), gt.flatten(1)  # (B*Q,N), (K_all,N)
        cost = (-self.cost_class * probs[:, labels] + self.cost_dice * dice_cost(pred, gt)
                + self.cost_mask * bce_cost(pred, gt))  # (B*Q,K_all)
        blocks = cost.view(batch, queries, -1).cpu().split(sizes, dim=-1)  # per clip (B,Q,K_b)
        indices = []
        for b, block in enumerate(blocks):
            if sizes[b] == 0:
                indices.append((empty, empty))
                continue
            rows, cols = linear_sum_assignment(block[b].numpy())
            indices.append((torch.from_numpy(rows).long(), torch.from_numpy(cols).long()))
        return indices


# ---------------------------------------------------------------------------------------------- losses
def per_frame_targets(targets: list[dict[str, torch.Tensor]], frames: int) -> list[dict[str, torch.Tensor]]:
    """Clip targets {labels (K,), masks (K,T,H,W)} -> B*T one-frame targets (clip-major), masks (K,1,H,W)."""
    out = []
    for target in targets:
        masks = target["masks"]  # (K,T,H,W)
        if masks.shape[1] != frames:
            raise ValueError(f"target masks have {masks.shape[1]} frames, predictions {frames}")
        out += [{"labels": target["labels"], "masks": masks[:, t:t + 1]} for t in range(frames)]
    return out


def semantic_targets(targets: list[dict[str, torch.Tensor]], num_classes: int,
                     size: tuple[int, int]) -> torch.Tensor:
    """Clip targets {labels (K,), masks (K,T,H,W)} -> soft per-cell class distributions (B,T,C+1,*size):
    each instance's area-averaged coverage of a cell goes to its class, the rest to background (index C)."""
    out = []
    for target in targets:
        masks = resize_targets(target["masks"], size)  # (K,T,h,w) coverage in [0, 1]
        frames = masks.shape[1]
        dense = masks.new_zeros(num_classes + 1, frames, *size)  # (C+1,T,h,w)
        dense.index_add_(0, target["labels"].long().to(masks.device), masks)
        dense[num_classes] = (1 - dense[:num_classes].sum(0)).clamp(min=0)  # overlaps cannot occur in label maps
        out.append(dense.transpose(0, 1))  # (T,C+1,h,w)
    return torch.stack(out)


class SetCriterion(nn.Module):
    """The losses of a query-based VIS model: cross-entropy on every query's class (matched queries their
    instance's class, the others "no object", weighted `eos_coef`), and dice + sigmoid BCE on the matched
    queries' masks over the clip (each normalized by the number of matched instances in the batch).

    Offline outputs (logits (B,Q,C+1)) are matched per clip, against the instances present somewhere in
    the clip (an instance absent from every frame of the clip is not a target). Online outputs (logits
    (B,T,Q,C+1)) are matched per frame, each frame against the instances visible in it: the per-frame
    training of MinVIS, which leaves tracking to the association at inference.

    Masks are compared at the predictions' resolution (the mask stride), the ground truth area-averaged to it
    (`resize_targets`), or at `num_points` random points per matched instance (uniform, not Mask2Former's
    uncertainty-based sampling).

    When the model also predicts dense class logits ("semantic", (B,T,C+1,h,w)), a "semantic" term adds
    their soft cross-entropy against every cell's class coverage (`semantic_targets`), mean over cells:
    a dense signal on every pixel of every frame, which the set losses of a few matched queries lack.
    Online outputs with "embeddings" (B,T,Q,D) may add a "track" term (`_track_loss`): the frame-to-frame
    association that inference does by embedding similarity, trained contrastively.

    Args:
        num_classes: C real classes.
        matcher: a `HungarianMatcher`.
        eos_coef: weight of the "no object" class in the cross-entropy.
        weights: weights of the "class", "dice", "mask" (BCE), "semantic" and "track" terms.
        deep_supervision: add the same losses on every earlier decoder layer's predictions (`aux`).
        num_points: mask losses at this many random points per instance (None = every cell).
        tau: temperature of the track loss's cosine similarities.

    Targets: a list per clip of {"labels": int64 (K,) in 0..C-1, "masks": bool/float (K,T,H,W)}.
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher, eos_coef: float = 0.1,
                 weights: dict[str, float] | None = None, deep_supervision: bool = True,
                 num_points: int | None = None, tau: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weights = {"class": 2.0, "dice": 5.0, "mask": 5.0, "semantic": 0.0, "track": 0.0, **(weights or {})}
        unknown = set(self.weights) - {"class", "dice", "mask", "semantic", "track"}
        if unknown:
            raise LitVideoError(f"unknown VIS loss weights {sorted(unknown)}; known: class, dice, mask, "
                                "semantic, track")
        self.tau = tau
        self.deep_supervision = deep_supervision
        self.num_points = num_points
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = eos_coef
        self.register_buffer("class_weight", class_weight, persistent=False)

    def forward(self, outputs: dict, targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """outputs: a model's dict ("logits", "masks", optionally "aux" and "semantic") -> {"loss": the
        weighted total over all layers, "loss_class", "loss_dice", "loss_mask": the final layer's
        unweighted terms, and "loss_semantic" when weighted}."""
        semantic = None
        if "semantic" in outputs and self.weights["semantic"] > 0:
            logits = outputs["semantic"].float()  # (B,T,C+1,h,w)
            dense = semantic_targets(targets, self.num_classes, logits.shape[-2:]).to(logits.device)
            semantic = -(dense * logits.log_softmax(2)).sum(2).mean()
        targets = self._flatten(outputs, targets)
        final, indices = self._layer_losses(outputs, targets)
        total = sum(self.weights[k] * v for k, v in final.items())
        if self.deep_supervision:
            by_size = {tuple(outputs["masks"].shape[-2:]): targets}  # earlier layers' masks may be coarser
            for aux in outputs.get("aux", []):
                size = tuple(aux["masks"].shape[-2:])
                if size not in by_size:
                    by_size[size] = [{**t, "masks": resize_targets(t["masks"], size)} for t in targets]
                losses = self._layer_losses(aux, by_size[size])[0]
                total = total + sum(self.weights[k] * v for k, v in losses.items())
        if semantic is not None:
            total = total + self.weights["semantic"] * semantic
            final["semantic"] = semantic
        embeddings = outputs.get("embeddings")
        if self.weights["track"] > 0 and embeddings is not None and embeddings.ndim == 4:
            final["track"] = self._track_loss(embeddings, indices, targets)
            total = total + self.weights["track"] * final["track"]
        return {"loss": total, **{f"loss_{k}": v.detach() for k, v in final.items()}}

    def _flatten(self, outputs: dict, targets: list[dict[str, torch.Tensor]]) -> list[dict]:
        if len(targets) != outputs["masks"].shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {outputs['masks'].shape[0]} clips")
        if outputs["logits"].ndim == 4:  # online: every frame its own one-frame clip
            targets = per_frame_targets(targets, outputs["masks"].shape[2])
        size, device = outputs["masks"].shape[-2:], outputs["masks"].device
        kept = []
        for target in targets:
            # an instance absent from the whole clip (online: from the frame) is no target
            present = target["masks"].flatten(1).any(dim=1)  # (K,)
            # resized once here, not by every layer's matching and losses
            kept.append({"ids": present.nonzero()[:, 0], "labels": target["labels"][present].to(device),
                         "masks": resize_targets(target["masks"][present].to(device), size)})
        return kept

    @staticmethod
    def _per_clip(prediction: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, masks) with one entry per matched clip: online (B,T,Q,C+1), (B,Q,T,h,w)
        -> (B*T,Q,C+1), (B*T,Q,1,h,w); offline unchanged."""
        logits, masks = prediction["logits"], prediction["masks"]
        if logits.ndim == 4:
            logits = logits.flatten(0, 1)  # (B*T,Q,C+1)
            masks = masks.transpose(1, 2).flatten(0, 1).unsqueeze(2)  # (B*T,Q,1,h,w)
        return logits, masks

    def _track_loss(self, embeddings: torch.Tensor, indices: list[tuple[torch.Tensor, torch.Tensor]],
                    targets: list[dict]) -> torch.Tensor:
        """Online association loss: embeddings (B,T,Q,D) of the final layer, the per-frame matches of its
        queries (B*T entries, clip-major) -> the cross-entropy of picking, among all Q queries of frame
        t+1 (and of t, backwards), the query matched to the same instance by cosine similarity / `tau`:
        what `associate` does at inference, trained (IDOL / CTVIS-style contrastive tracking)."""
        batch, frames = embeddings.shape[:2]
        normed = F.normalize(embeddings.float(), dim=-1)  # (B,T,Q,D)
        losses = []
        for b in range(batch):
            # instance id -> its query, per frame
            owners = [{int(targets[b * frames + t]["ids"][col]): int(row)
                       for row, col in zip(*indices[b * frames + t], strict=True)} for t in range(frames)]
            for t in range(frames - 1):
                shared = sorted(owners[t].keys() & owners[t + 1].keys())
                if not shared:
                    continue
                for src, dst in ((t, t + 1), (t + 1, t)):
                    anchors = normed[b, src, [owners[src][k] for k in shared]]  # (S,D)
                    logits = anchors @ normed[b, dst].T / self.tau  # (S,Q)
                    wanted = torch.tensor([owners[dst][k] for k in shared], device=logits.device)
                    losses.append(F.cross_entropy(logits, wanted, reduction="none"))
        if not losses:
            return embeddings.sum() * 0.0
        return torch.cat(losses).mean()

    def _layer_losses(self, prediction: dict, targets: list[dict]
                      ) -> tuple[dict[str, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        logits, masks = self._per_clip(prediction)  # (N,Q,C+1), (N,Q,T,h,w)
        indices = self.matcher(logits, masks, targets)

        classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        for n, (rows, cols) in enumerate(indices):
            classes[n, rows] = targets[n]["labels"][cols]
        loss_class = F.cross_entropy(logits.float().transpose(1, 2), classes,
                                     self.class_weight.to(logits.device))  # weighted mean over queries

        matched = [masks[n, rows] for n, (rows, _) in enumerate(indices)]
        pred = torch.cat(matched).float()  # (M,T,h,w)
        if pred.shape[0] == 0:  # no instance in the whole batch: zero, but keep the graph
            zero = masks.sum() * 0.0
            return {"class": loss_class, "dice": zero, "mask": zero}, indices
        gt = torch.cat([targets[n]["masks"][cols] for n, (_, cols) in enumerate(indices)])  # (M,T,h,w)
        if self.num_points is not None:
            points = torch.rand(pred.shape[0], self.num_points, 2, device=pred.device)
            pred, gt = point_sample(pred, points), point_sample(gt, points)  # (M,T,P)
        pred, gt = pred.flatten(1), gt.flatten(1)  # (M,N)
        num_masks = pred.shape[0]
        probs = pred.sigmoid()
        dice = 1 - (2 * (probs * gt).sum(-1) + 1) / (probs.sum(-1) + gt.sum(-1) + 1)  # (M,)
        bce = F.binary_cross_entropy_with_logits(pred, gt, reduction="none").mean(-1)  # (M,)
        return {"class": loss_class, "dice": dice.sum() / num_masks, "mask": bce.sum() / num_masks}, indices
