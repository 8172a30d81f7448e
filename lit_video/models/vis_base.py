"""The interface of the query-based video instance segmentation (VIS) models (not registered).

A VIS model maps a clip to N instance queries, each a class distribution and a mask tube:

    out = model(video)                           # video (B,3,T,H,W), ImageNet-normalized
    out["logits"]   # (B,Q,C+1) offline (one class per query and clip) | (B,T,Q,C+1) online (per frame)
    out["masks"]    # (B,Q,T,H/s,W/s) mask logits, both modes, at the model's `mask_stride` s (4 if unset)
    out["aux"]      # the same two keys after every earlier decoder layer (deep supervision; masks at stride 4)
    scores, masks = model.segment_video(video)   # one whole video (1,3,T,H,W) -> (Q,C), (Q,T,H/s,W/s)

Classes are 0..C-1; index C of the logits is "no object". The parts live by role: the network parts in
`vis_decoders`, the association of queries into tracks in `vis_association`, matching and losses in
`vis_criterion` (the mask losses shared with VOS in `losses`).
"""

from __future__ import annotations

import torch
from torch import nn

from lit_video.models.vis_association import associate

VIS_MODES = ("offline", "online")
ABSENT_LOGIT = -20.0  # the mask logit of a frame where a track is absent: sigmoid ~2e-9, finite in bf16


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
