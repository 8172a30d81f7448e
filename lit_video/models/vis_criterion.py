"""Training targets and losses of the query-based VIS models: ground truth resized to the prediction grid,
Hungarian matching of queries to instances, and the set criterion (class, mask, dense class and track
terms). The mask losses themselves are in `lit_video.models.losses`, shared with VOS."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.losses import dice_loss, pairwise_dice_loss, pairwise_sigmoid_bce_loss, sigmoid_bce_loss
from lit_video.models.vos_base import pad_to_multiple


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


def resize_all(masks: list[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
    """`resize_targets` of several (K_i,T,H,W) mask sets of one T, H, W -> (K_i,T,*size) each, in one call."""
    if not masks:
        return []
    return list(resize_targets(torch.cat(masks), size).split([len(m) for m in masks]))


def point_sample(masks: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear values of masks (N,T,h,w) at points (N,P,2) of (x, y) in [0, 1] -> (N,T,P); the same point
    in every frame (as Mask2Former-VIS samples a clip)."""
    grid = (2 * points - 1)[:, None]  # (N,1,P,2) in grid_sample's [-1, 1]
    return F.grid_sample(masks, grid, mode="bilinear", align_corners=False)[:, :, 0]


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
        cost = (-self.cost_class * probs[:, labels] + self.cost_dice * pairwise_dice_loss(pred, gt)
                + self.cost_mask * pairwise_sigmoid_bce_loss(pred, gt))  # (B*Q,K_all)
        blocks = cost.view(batch, queries, -1).cpu().split(sizes, dim=-1)  # per clip (B,Q,K_b)
        indices = []
        for b, block in enumerate(blocks):
            if sizes[b] == 0:
                indices.append((empty, empty))
                continue
            rows, cols = linear_sum_assignment(block[b].numpy())
            indices.append((torch.from_numpy(rows).long(), torch.from_numpy(cols).long()))
        return indices


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
    masks = torch.cat(resize_all([t["masks"] for t in targets], size))  # (K_all,T,h,w) coverage in [0, 1]
    # each instance's row of the (B*(C+1)) class planes: its clip's block, its class in it
    rows = torch.cat([b * (num_classes + 1) + t["labels"].long() for b, t in enumerate(targets)]).to(masks.device)
    dense = masks.new_zeros(len(targets) * (num_classes + 1), *masks.shape[1:])  # (B*(C+1),T,h,w)
    dense.index_add_(0, rows, masks)
    dense = dense.view(len(targets), num_classes + 1, *masks.shape[1:])  # (B,C+1,T,h,w)
    # overlaps cannot occur in label maps
    dense[:, num_classes] = (1 - dense[:, :num_classes].sum(1)).clamp(min=0)
    return dense.transpose(1, 2).contiguous()  # (B,T,C+1,h,w)


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
                    resized = resize_all([t["masks"] for t in targets], size)
                    by_size[size] = [{**t, "masks": m} for t, m in zip(targets, resized, strict=True)]
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
        size, device = outputs["masks"].shape[-2:], outputs["masks"].device
        # resized once here, not by every layer's matching and losses; each clip at once (online too: every
        # mask plane is resized on its own, so a frame's slice of the resized clip is the resized frame)
        resized = resize_all([t["masks"].to(device) for t in targets], size)  # per clip (K,T,h,w)
        if outputs["logits"].ndim == 4:  # online: every frame its own one-frame clip
            frames = outputs["masks"].shape[2]
            targets = per_frame_targets(targets, frames)
            resized = [clip[:, t:t + 1] for clip in resized for t in range(frames)]  # clip-major, (K,1,h,w)
        kept = []
        for target, masks in zip(targets, resized, strict=True):
            # an instance absent from the whole clip (online: from the frame) is no target
            present = target["masks"].flatten(1).any(dim=1)  # (K,)
            kept.append({"ids": present.nonzero()[:, 0], "labels": target["labels"][present].to(device),
                         "masks": masks[present.to(device)]})
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
        # one (Q,D) view per frame, clip-major: reading rows of these back-propagates through one stack,
        # where indexing `normed` itself would build a full-size gradient per read
        frame_embeddings = normed.flatten(0, 1).unbind(0)
        losses = []
        for b in range(batch):
            # instance id -> its query, per frame
            owners = []
            for t in range(frames):
                rows, cols = indices[b * frames + t]
                ids = targets[b * frames + t]["ids"].tolist()
                owners.append({ids[col]: row for row, col in zip(rows.tolist(), cols.tolist(), strict=True)})
            for t in range(frames - 1):
                shared = sorted(owners[t].keys() & owners[t + 1].keys())
                if not shared:
                    continue
                for src, dst in ((t, t + 1), (t + 1, t)):
                    anchors = frame_embeddings[b * frames + src][[owners[src][k] for k in shared]]  # (S,D)
                    logits = anchors @ frame_embeddings[b * frames + dst].T / self.tau  # (S,Q)
                    wanted = torch.tensor([owners[dst][k] for k in shared], device=logits.device)
                    losses.append(F.cross_entropy(logits, wanted, reduction="none"))
        if not losses:
            return embeddings.sum() * 0.0
        return torch.cat(losses).mean()

    def _layer_losses(self, prediction: dict, targets: list[dict]
                      ) -> tuple[dict[str, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        logits, masks = self._per_clip(prediction)  # (N,Q,C+1), (N,Q,T,h,w)
        indices = self.matcher(logits, masks, targets)
        # the matched (query, instance) pairs of all entries at once, entry-major: one gather of the masks
        # (per-entry indexing would back-propagate a full-size zero gradient per entry)
        queries = logits.shape[1]
        matched_queries = torch.cat([n * queries + rows for n, (rows, _) in enumerate(indices)]
                                    ).to(logits.device)  # (M,) into N*Q
        matched_labels = torch.cat([targets[n]["labels"][cols] for n, (_, cols) in enumerate(indices)]
                                   ).to(logits.device)  # (M,)

        classes = torch.full((logits.shape[0] * queries,), self.num_classes, dtype=torch.int64, device=logits.device)
        classes[matched_queries] = matched_labels
        loss_class = F.cross_entropy(logits.float().transpose(1, 2), classes.view(logits.shape[:2]),
                                     self.class_weight.to(logits.device))  # weighted mean over queries

        pred = masks.flatten(0, 1)[matched_queries].float()  # (M,T,h,w)
        if pred.shape[0] == 0:  # no instance in the whole batch: zero, but keep the graph
            zero = masks.sum() * 0.0
            return {"class": loss_class, "dice": zero, "mask": zero}, indices
        gt = torch.cat([targets[n]["masks"][cols] for n, (_, cols) in enumerate(indices)])  # (M,T,h,w)
        if self.num_points is not None:
            points = torch.rand(pred.shape[0], self.num_points, 2, device=pred.device)
            pred, gt = point_sample(pred, points), point_sample(gt, points)  # (M,T,P)
        pred, gt = pred.flatten(1), gt.flatten(1)  # (M,N)
        num_masks = pred.shape[0]
        dice, bce = dice_loss(pred, gt), sigmoid_bce_loss(pred, gt)  # (M,) each
        return {"class": loss_class, "dice": dice.sum() / num_masks, "mask": bce.sum() / num_masks}, indices
