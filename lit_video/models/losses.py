"""Mask losses of the segmentation models, VOS and VIS alike.

- VIS (`vis_criterion`): dice and sigmoid binary cross-entropy of one query's mask logits against one
  instance's soft mask, per matched pair (`dice_loss`, `sigmoid_bce_loss`) for the loss and for every
  query/instance pair at once (`pairwise_dice_loss`, `pairwise_sigmoid_bce_loss`) for the matching cost.
- VOS: `segmentation_loss`, the cross-entropy of the soft-aggregated per-pixel distribution (optionally
  bootstrapped) plus a soft-Jaccard term over the objects.

Every overlap ratio is smoothed by +1 in numerator and denominator, so an empty prediction of an empty
target costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lit_video.data.masks import VOID


def _dice(intersection: torch.Tensor, prediction_area: torch.Tensor,
          target_area: torch.Tensor) -> torch.Tensor:
    """1 - (2 |p.g| + 1) / (|p| + |g| + 1), elementwise over already summed areas."""
    return 1 - (2 * intersection + 1) / (prediction_area + target_area + 1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Dice loss of each row: mask logits (M,N), soft targets (M,N) in [0, 1] -> (M,)."""
    probs = logits.sigmoid()
    return _dice((probs * targets).sum(-1), probs.sum(-1), targets.sum(-1))


def pairwise_dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Dice loss of every pair of rows: logits (Q,N), targets (K,N) in [0, 1] -> (Q,K), as matrix products."""
    probs = logits.sigmoid()
    return _dice(probs @ targets.T, probs.sum(-1)[:, None], targets.sum(-1)[None])


def sigmoid_bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean sigmoid binary cross-entropy of each row: logits (M,N), targets (M,N) in [0, 1] -> (M,)."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)


def pairwise_sigmoid_bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean sigmoid binary cross-entropy of every pair of rows: logits (Q,N), targets (K,N) -> (Q,K).

    BCE(x, g) = g * softplus(-x) + (1 - g) * softplus(x), summed over N as two matrix products.
    """
    positive, negative = F.softplus(-logits), F.softplus(logits)  # (Q,N) costs of g=1 and g=0
    return (positive @ targets.T + negative @ (1 - targets).T) / logits.shape[-1]


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0, bootstrap: float | None = None,
) -> torch.Tensor:
    """VOS loss of one frame: cross-entropy (optionally bootstrapped) plus soft-Jaccard over the objects.

    Args:
        logits: (B,K+1,H,W) aggregated logits, background first.
        target: (B,H,W) int64 ids 0..K, VOID (255) ignored.
        dice_weight: weight of the soft-Jaccard (Lovász-free IoU) term.
        bootstrap: keep only this fraction of the hardest pixels in the cross-entropy (STM/STCN use
            0.15 after a warm-up); None = all pixels.
    """
    pixel_ce = F.cross_entropy(logits, target, ignore_index=VOID, reduction="none")  # (B,H,W)
    valid = target != VOID
    if bootstrap is not None and 0 < bootstrap < 1:
        losses = pixel_ce[valid]
        keep = max(1, int(bootstrap * losses.numel()))
        ce = losses.topk(keep).values.mean() if losses.numel() else pixel_ce.sum() * 0
    else:
        ce = pixel_ce[valid].mean() if valid.any() else pixel_ce.sum() * 0
    if dice_weight <= 0:
        return ce
    num_objects = logits.shape[1] - 1
    probabilities = logits.softmax(dim=1)[:, 1:]  # (B,K,H,W)
    one_hot = F.one_hot(target.clamp(max=num_objects) * valid, num_objects + 1)[..., 1:]  # (B,H,W,K)
    one_hot = one_hot.permute(0, 3, 1, 2).to(probabilities.dtype)  # (B,K,H,W)
    weight = valid[:, None].to(probabilities.dtype)
    intersection = (probabilities * one_hot * weight).sum(dim=(2, 3))  # (B,K)
    union = ((probabilities + one_hot - probabilities * one_hot) * weight).sum(dim=(2, 3))
    # an object absent from both the frame and the prediction says nothing about the model: left out
    has_object = one_hot.flatten(2).any(dim=2)  # (B,K)
    jaccard = torch.where(union > 0, (intersection + 1) / (union + 1), torch.ones_like(union))
    soft_jaccard_loss = (1 - jaccard)[has_object | (union > 0.5)].mean() if union.numel() else ce * 0
    return ce + dice_weight * torch.nan_to_num(soft_jaccard_loss)
